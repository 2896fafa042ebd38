"""``python -m scoresde.train`` / ``scoresde-train``: train a score model, draw samples, evaluate test likelihood.

Everything a run produces goes into hydra's run directory (``outputs/DATE/TIME/`` by default): ``.hydra/``
(the config), ``train.log``, ``metrics.jsonl``, ``checkpoints/``, ``samples_<step>.png`` / ``.npz``,
``samples_final.png``, ``loss.png`` and ``eval.json``. Works unchanged under ``torchrun --nproc_per_node=N``.
"""

from __future__ import annotations

import json
import logging
import shutil
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig
from torch import nn

from .._instantiate import build_score_model, instantiate
from ..data import ArrayDataset, Chain, UniformDequantization
from ..likelihood.divergence import choose_divergence
from ..models.parameterization import measure_sigma_data
from ..training.evaluation import evaluate_likelihood
from ..training.interrupt import TrainingInterrupted
from ..training.trainer import Trainer
from ._consistency import build_student, is_consistency_run
from ._preflight import resume_checkpoint, take_notes
from ._runtime import (
    CONF_DIR,
    Runtime,
    SettingError,
    exit_on_error,
    finish,
    plain_config,
    setup_runtime,
    shared_run_dir,
)
from ._settings import validate_train
from .snapshots import LossCurve, SampleSnapshot

log = logging.getLogger("scoresde.train")


def describe_model(model: nn.Module, example: torch.Tensor) -> str:
    """Parameter count and the time of one forward pass at the training batch size."""
    params = sum(p.numel() for p in model.parameters())
    t = torch.full((example.shape[0],), 0.5, device=example.device)
    with torch.no_grad():
        model(example, t)  # warm-up
        start = time.perf_counter()
        model(example, t)
        ms = 1e3 * (time.perf_counter() - start)
    return f"{type(model.net).__name__}: {params:,} parameters, forward pass {ms:.1f} ms at batch {example.shape[0]}"


def _resume_path(resume: Any, run_dir: Path) -> Path | None:
    """``resume=false``: none; ``true``: newest readable checkpoint of this run directory; a path: that file (the
    preflight has replaced ``true`` by the path already, except in multirun jobs)."""
    if resume is False or resume is None:
        return None
    return resume_checkpoint(resume, run_dir)[0]


def _labels(dataset, model: nn.Module) -> torch.Tensor | None:
    """The training labels for a label-conditional model (``model.net.num_classes=K``), else None."""
    if model.num_classes is None:
        return None
    if dataset.train_labels is None or dataset.num_classes != model.num_classes:
        raise ValueError(f"model.net.num_classes={model.num_classes} but dataset {dataset.name!r} has "
                         f"{dataset.num_classes or 'no'} classes")  # fmt: skip
    return dataset.train_labels


def train_transform(dataset: ArrayDataset, dequantize: bool) -> Callable[..., torch.Tensor] | None:
    """The dataset's own augmentation, followed by uniform dequantisation when ``data.dequantize`` is true."""
    if not dequantize:
        return dataset.train_transform
    if dataset.levels is None:
        raise SettingError(f"data.dequantize=true needs discrete data, but {dataset.name!r} is continuous "
                           "(no levels): pass data.dequantize=false")  # fmt: skip
    dequant = UniformDequantization(dataset.levels, dataset.data_range)
    return dequant if dataset.train_transform is None else Chain(dataset.train_transform, dequant)


def run(cfg: DictConfig, run_dir: Path, runtime: Runtime) -> dict[str, Any]:
    """Train, sample and evaluate as ``cfg`` says; returns the summary written to summary.json (rank 0)."""
    config = plain_config(cfg)
    torch.manual_seed(int(cfg.seed))  # the initial weights (DDP broadcasts rank 0's anyway)
    dataset = instantiate(config["data"]["dataset"])
    if len(dataset.train) < int(cfg.train.batch_size):  # before the model is built and timed
        raise SettingError(f"train.batch_size={cfg.train.batch_size} exceeds the {len(dataset.train)} training "
                           f"examples of {dataset.name}: pass train.batch_size={len(dataset.train)} or less, or give "
                           "more data")  # fmt: skip
    sde = instantiate(config["sde"])
    if config["model"].get("sigma_data") == "auto":  # EDM's sigma_data, measured once and stored in the checkpoint
        config["model"]["sigma_data"] = measure_sigma_data(dataset.train)
    teacher = None
    if is_consistency_run(config):  # train=consistency_*: a student ConsistencyModel, its teacher's score
        model, teacher = build_student(config, sde, dataset.event_shape, runtime.device, dataset.train)
    else:
        model = build_score_model(config["model"], sde, dataset.event_shape).to(runtime.device)
    train_config = instantiate(config["train"])
    if teacher is not None:
        train_config.objective.teacher = teacher
    if runtime.is_main:
        log.info("run directory: %s", run_dir)
        log.info("data: %s, %d train / %d test, event shape %s", dataset.name, len(dataset.train),
                 len(dataset.test), dataset.event_shape)  # fmt: skip
        log.info("sde: %r", sde)
        example = dataset.train[: train_config.batch_size // runtime.world_size].to(runtime.device)
        log.info("model: %s", describe_model(model, example))
        log.info("device: %s, %d process(es) x %d thread(s)", runtime.device, runtime.world_size, runtime.threads)
    kind = config["data"].get("kind", "image")
    snapshot = SampleSnapshot(
        run_dir,
        dataset.event_shape,
        instantiate(config["solver"]),
        n=int(cfg.sample.n),
        steps=config["consistency"].get("sample_steps", 1) if is_consistency_run(config) else cfg.sample.steps,
        kind=kind,
        data_range=dataset.data_range,
        reference=dataset.train[:4000] if kind == "points" else None,
        seed=int(cfg.seed),
        save_arrays=True,
        # a bar over the solver steps of every sample grid; a consistency model samples to its own eps
        sample_options={"progress": bool(cfg.progress)} | ({"eps": model.eps} if is_consistency_run(config) else {}),
    )
    trainer = Trainer(
        model,
        dataset.train,
        train_config,
        run_dir=run_dir,
        seed=int(cfg.seed),
        device=runtime.device,
        snapshot=snapshot,
        transform=train_transform(dataset, bool(config["data"].get("dequantize", False))),
        run_config=config,
        progress=bool(cfg.progress),
        labels=_labels(dataset, model),
        callbacks=[LossCurve()],
    )
    resume_from = _resume_path(cfg.resume, run_dir)
    if resume_from is not None:
        trainer.resume(resume_from)
        log.info("resumed from %s at step %d", resume_from, trainer.step)
    start = time.perf_counter()
    try:
        result = trainer.fit()
    except TrainingInterrupted as stop:
        saved = f"saved {stop.checkpoint}" if stop.checkpoint else "no checkpoint written"
        raise KeyboardInterrupt(
            f"training stopped at step {stop.step}, {saved}; continue with: python -m scoresde.train resume=true "
            f"hydra.run.dir={run_dir}"
        ) from None
    summary: dict[str, Any] = {"step": result.step, "steps_this_run": result.steps_run, "final_loss": result.loss,
                               "final_loss_steps": result.loss_steps, "steps_per_s": result.steps_per_s,
                               "train_time_s": result.wall_time, "checkpoint": str(result.checkpoint)}  # fmt: skip
    if hasattr(train_config.objective, "teacher_calls") and result.steps_run:  # consistency distillation's cost
        summary["teacher_calls_per_step"] = train_config.objective.teacher_calls / result.steps_run
        summary["levels"] = train_config.objective.N  # N=auto: the levels chosen from the teacher's map error
        summary["map_errors"] = {str(k): v for k, v in train_config.objective.map_errors.items()}
    if runtime.world_size > 1:
        summary["replica_deviation"] = result.replica_deviation
        if runtime.is_main:
            log.info("DDP: %d replicas, max |theta - theta_rank0| = %.3g", runtime.world_size, result.replica_deviation)
    if not runtime.is_main:
        return summary
    log.info("trained %d steps (step %d -> %d) in %.1f s (%.1f steps/s); loss %.4g (mean of the last %d steps)",
             result.steps_run, result.step - result.steps_run, result.step, result.wall_time, result.steps_per_s,
             result.loss, result.loss_steps)  # fmt: skip
    if snapshot.last is not None:
        shutil.copyfile(snapshot.last, run_dir / "samples_final.png")
        log.info("samples: %s", run_dir / "samples_final.png")
    n_test = min(int(cfg.eval.n_test), len(dataset.test))
    if n_test > 0 and is_consistency_run(config):
        log.info("no test likelihood: a consistency model has no score (evaluate its teacher)")
        n_test = 0
    if n_test > 0:
        options = {k: v for k, v in config["eval"].items() if k not in ("n_test", "exact_max_dim")}
        options["progress"] = bool(cfg.progress)  # a bar over [eps, T] of the likelihood solve
        log.info("evaluating the test likelihood on %d examples", n_test)
        options["divergence"] = choose_divergence(
            str(options.get("divergence", "auto")), dataset.test[0].numel(), int(cfg.eval.exact_max_dim)
        )
        report = evaluate_likelihood(sde, trainer.ema.model, dataset.train, dataset.test[:n_test].to(runtime.device),
                                     levels=dataset.levels, data_range=dataset.data_range, seed=int(cfg.seed),
                                     centred_bins=bool(cfg.data.get("dequantize", False)), **options)  # fmt: skip
        log.info("%s\n  (%d score evaluations, %.1f s)", report.table(), report.nfe, report.wall_time)
        summary["eval"] = report.as_dict()
        (run_dir / "eval.json").write_text(json.dumps(report.as_dict(), indent=2) + "\n")
    summary["total_time_s"] = time.perf_counter() - start
    (run_dir / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="config")
def main(cfg: DictConfig) -> None:
    """Console-script entry point (``scoresde-train``)."""
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    with exit_on_error(run_dir, fresh=True):  # removes the run directory only if it holds nothing but hydra's files
        validate_train(cfg)  # done by the preflight already, except in multirun jobs
        runtime = setup_runtime(cfg.device, cfg.threads)
        run_dir = shared_run_dir(run_dir, runtime)
        for note in take_notes():
            log.info("%s", note)
        run(cfg, run_dir, runtime)
        finish(runtime)


if __name__ == "__main__":
    main()
