"""FID against NFE for every solver of a checkpoint: ``python benchmarks/fid_sweep.py -m ckpt=RUN solver=pc,ode
steps=10,100``.

Each point (solver, its options, steps) draws ``num_samples`` samples with a fixed seed and records solver, options,
steps, NFE, wall time, FID, KID, the classifier score and the floor of each (held-out real data scored the same way)
in ``<out_dir>/points/<label>_steps<steps>_<hash>.json`` the moment it finishes (the samples beside it as ``.pt``
unless ``save_samples=false``). FID is biased upwards at small N, so when N exceeds the held-out split (digits:
297 test images) the floor is measured at that smaller n and ``fid_matched`` gives the samples' FID at the same n.
A rerun skips points whose file exists, so an interrupted sweep loses nothing. After every point the whole
directory is aggregated into ``fid_sweep.csv``, ``fid_sweep.png`` (FID against NFE, one line per solver, the floor
dashed) and ``fid_sweep.md``. The config is conf/fid_sweep.yaml. Under ``torchrun --nproc_per_node=N`` every
point's batches are dealt to the ranks (sample i keyed by (seed, i): the same samples for any N) and rank 0 scores
and writes it.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import math
import platform
import sys
import time
from pathlib import Path
from typing import Any

import hydra
import torch
from hydra.core.hydra_config import HydraConfig
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

sys.path.insert(0, str(Path(__file__).resolve().parent))
import provenance  # noqa: E402
from sweep_report import aggregate  # noqa: E402

import scoresde  # noqa: E402
from scoresde.cli._runtime import exit_on_error  # noqa: E402
from scoresde.distributed import broadcast_from_main, init_from_env, local_device, sample_sharded  # noqa: E402
from scoresde.metrics.features import extractor_for  # noqa: E402
from scoresde.metrics.quality import SampleEvaluator  # noqa: E402
from scoresde.solvers import AdaptiveSDE  # noqa: E402
from scoresde.solvers.schedule_file import file_digest  # noqa: E402

log = logging.getLogger("fid_sweep")
CONF_DIR = str(Path(__file__).resolve().parents[1] / "conf")  # benchmarks run from a checkout


@functools.cache
def _checkpoint(path: str, ema: bool, device: str):
    return scoresde.load_checkpoint(path, map_location=device, ema=ema)


@functools.cache
def _evaluator(path: str, ema: bool, device: str, extractor: str, cache_dir, weights, subsets: int, size: int, seed):
    dataset = _checkpoint(path, ema, device).load_dataset()
    ext = extractor_for(dataset, extractor, cache_root=cache_dir, inception_weights=weights)
    return dataset, SampleEvaluator(
        dataset, ext, cache_root=cache_dir, kid_subsets=subsets, kid_subset_size=size, seed=seed
    )


def _solver_label(cfg: DictConfig) -> str:
    """``label`` if given, else the solver choice plus its command-line overrides, e.g. ``pc[corrector=none]``."""
    if cfg.label:
        return str(cfg.label)
    hc = HydraConfig.get()
    choice = hc.runtime.choices.get("solver", "solver")
    opts = sorted(o.split(".", 1)[1] for o in hc.overrides.task if o.startswith("solver."))
    grid = "@optimized" if cfg.get("grid") == "optimized" else ""
    return (f"{choice}[{','.join(opts)}]" if opts else str(choice)) + grid


def _sweep_size() -> int | None:
    """Number of jobs of this multirun, from the sweep overrides on the command line (None if unknown)."""
    try:
        from hydra.core.override_parser.overrides_parser import OverridesParser

        args = [a for a in sys.argv[1:] if not a.startswith("-")]
        total = 1
        for o in OverridesParser.create().parse_overrides(args):
            if o.is_sweep_override():
                total *= len(list(o.sweep_string_iterator()))
        return total
    except Exception:  # an exotic sweep (glob, interval): progress just omits the total
        return None


def _point_path(cfg: DictConfig, label: str, ckpt_path: Path) -> tuple[Path, dict[str, Any]]:
    """The JSON file of this point and the settings that identify it."""
    identity = {
        "ckpt": str(ckpt_path.resolve()),
        "solver": OmegaConf.to_container(cfg.solver, resolve=True),
        "steps": cfg.steps,
        "num_samples": cfg.num_samples,
        "seed": cfg.seed,
        "eps": cfg.eps,
        "denoise": cfg.denoise,
        "ema": cfg.ema,
        "extractor": cfg.extractor,
    } | ({"nfe": cfg.nfe} if cfg.get("nfe") is not None else {})  # points without a budget keep their old digest
    identity |= {"grid": cfg.grid} if cfg.get("grid") is not None else {}
    digest = hashlib.sha256(json.dumps(identity, sort_keys=True).encode()).hexdigest()[:10]
    safe = "".join(c if c.isalnum() or c in "-_=," else "-" for c in label)
    steps = "default" if cfg.steps is None else cfg.steps
    steps = f"nfe{cfg.nfe}" if cfg.get("nfe") is not None else f"steps{steps}"
    return Path(cfg.out_dir) / "points" / f"{safe}_{steps}_{digest}.json", identity


def _placeholders(cfg: DictConfig) -> dict[str, str]:
    """Machine-local paths of the command line and the names the stored command says instead."""
    hc = HydraConfig.get()
    out = {"RUN": str(cfg.ckpt), "SWEEP_DIR": str(hc.sweep.dir), "RUN_DIR": str(hc.run.dir)}
    return out | ({"OUT": str(cfg.out_dir)} if Path(str(cfg.out_dir)).is_absolute() else {})


def _ckpt_placeholder(given: str, path: Path) -> str:
    """The checkpoint as stored in a point: ``RUN/...`` relative to the ``ckpt=`` given, no machine-local path."""
    try:
        return str(Path("RUN") / path.resolve().relative_to(Path(given).resolve()))
    except ValueError:
        return f"RUN ({path.name})"


def _schedule_record(schedule) -> dict[str, Any] | None:
    """What a point walked with grid=optimized: the solver variant and grid the schedule chose, and its cost."""
    if schedule is None:
        return None
    keep = ("options", "start", "pilots", "pilot_evaluations", "pilot_error", "default_error")
    return {k: getattr(schedule, k) for k in keep} | {"times": schedule.times.tolist()}


def run_point(cfg: DictConfig) -> dict[str, Any] | None:
    """Sample and score one point (or skip it when its file exists); returns the record written."""
    device = local_device(cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu"))
    ckpt = _checkpoint(str(cfg.ckpt), bool(cfg.ema), device)
    label = _solver_label(cfg)
    path, identity = _point_path(cfg, label, ckpt.path)
    done = len(list(path.parent.glob("*.json"))) if path.parent.is_dir() else 0
    total = _sweep_size() if HydraConfig.get().mode.name == "MULTIRUN" else 1
    job = HydraConfig.get().job.get("num", 0) + 1 if HydraConfig.get().mode.name == "MULTIRUN" else 1
    where = f"[job {job}/{total or '?'}; {done} points in {path.parent}]"
    if broadcast_from_main(path.exists()):
        log.info("%s %s steps=%s: already done (%s), skipped", where, label, cfg.steps, path.name)
        return None
    log.info("%s %s steps=%s: sampling %d", where, label, cfg.steps, cfg.num_samples)
    solver = instantiate(cfg.solver)
    times, schedule = None, None
    if cfg.get("grid") == "optimized":  # the schedule `python -m scoresde.schedule` saved beside the checkpoint
        schedule = scoresde.solvers.schedule_file.schedule_for_checkpoint(ckpt.path, solver, cfg.get("nfe"), cfg.eps)
        solver, times = schedule.solver_for(solver), schedule.times  # the solver variant the schedule chose
    samples, info = sample_sharded(ckpt.sde, ckpt.score_fn, int(cfg.num_samples), ckpt.event_shape,
                                   seed=int(cfg.seed), batch_size=int(cfg.batch_size), device=device,
                                   solver=solver, steps=cfg.steps, nfe=cfg.get("nfe"), eps=cfg.eps,
                                   denoise=cfg.denoise, progress=cfg.progress, times=times)  # fmt: skip
    if samples is None:
        return None  # not rank 0: rank 0 scores and writes the point
    nfe, wall, steps = max(info.nfe), info.wall_time, info.steps
    dataset, evaluator = _evaluator(str(cfg.ckpt), bool(cfg.ema), device, cfg.extractor, cfg.cache_dir,
                                    cfg.inception_weights, cfg.kid_subsets, cfg.kid_subset_size, cfg.seed)  # fmt: skip
    # an adaptive solve (ProbabilityFlowODE with dopri5, AdaptiveSDE) reports output intervals, not its steps
    adaptive = isinstance(solver, AdaptiveSDE) or bool(getattr(getattr(solver, "spec", None), "adaptive", False))
    floor = evaluator.floor(cfg.num_samples)
    if not bool(torch.isfinite(samples).all()):
        scores = {"fid": math.nan, "kid": math.nan}  # a diverged sampler is a result, not a crash
        log.warning("%s steps=%s produced non-finite samples", label, cfg.steps)
    else:
        scores = evaluator.evaluate(samples.clamp(*dataset.data_range), matched_n=floor.n).as_dict()
    floor = floor.as_dict("floor_")
    path.parent.mkdir(parents=True, exist_ok=True)
    if cfg.save_samples:
        torch.save(samples.to(torch.float16 if cfg.save_samples == "half" else torch.float32), path.with_suffix(".pt"))
    record = {
        "label": label,
        "solver": identity["solver"].get("_target_", ""),
        "options": {k: v for k, v in identity["solver"].items() if k != "_target_"},
        "steps": None if adaptive else steps,  # an adaptive ODE solve reports one output interval
        "steps_requested": cfg.steps,
        "adaptive": adaptive,
        "nfe_requested": cfg.get("nfe"),
        "grid": cfg.get("grid"),
        "schedule": _schedule_record(schedule),
        "nfe": nfe,
        "wall_time": round(wall, 3),
        **scores,
        **floor,
        "dataset": dataset.name,
        "data_range": list(dataset.data_range),
        "extractor": evaluator.extractor.key,
        "ckpt": _ckpt_placeholder(str(cfg.ckpt), ckpt.path),
        "ckpt_sha256": file_digest(ckpt.path),
        "ckpt_step": ckpt.step,
        "num_samples": cfg.num_samples,
        "seed": cfg.seed,
        "processes": info.world_size,
        "device": str(torch.cuda.get_device_name() if device.startswith("cuda") else platform.processor() or "cpu"),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "finished": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **{
            k: v
            for k, v in provenance.record(placeholders=_placeholders(cfg)).items()
            if k in ("commit", "command", "machine")
        },
    }
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(record, indent=2) + "\n")
    tmp.replace(path)  # atomic: an interrupted point leaves no file, so the rerun redoes it
    matched = "" if scores.get("fid_matched") is None else f", FID at n={floor['floor_n']} {scores['fid_matched']:.3f}"
    log.info("%s steps=%s: NFE %d, %.1f s, FID %.3f%s (floor %.3f at n=%d), KID %.4f -> %s", label, cfg.steps, nfe,
             wall, scores["fid"], matched, floor["floor_fid"], floor["floor_n"], scores["kid"], path.name)  # fmt: skip
    return record


@hydra.main(version_base=None, config_path=CONF_DIR, config_name="fid_sweep")
def main(cfg: DictConfig) -> None:
    # an error prints one line and removes the job's (and an otherwise empty sweep's) directory
    with exit_on_error(Path(HydraConfig.get().runtime.output_dir), fresh=True):
        torch.set_num_threads(int(cfg.threads))
        group = init_from_env(cfg.device)
        if not cfg.aggregate_only:
            run_point(cfg)
            if not cfg.aggregate_each_point or not group.is_main:
                return
        if not group.is_main:
            return
        written = aggregate(Path(cfg.out_dir))
        if written:
            log.info("aggregated %d points into %s", written.points, ", ".join(str(p) for p in written.files))


if __name__ == "__main__":
    main()
