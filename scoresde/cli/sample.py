"""``python -m scoresde.sample ckpt=PATH solver=pc|ode|ald|euler_maruyama n=64`` / ``scoresde-sample``.

``grid=optimized`` (with ``nfe=N``) walks the schedule ``python -m scoresde.schedule`` saved beside the checkpoint
for that solver, its options and budget.

Loads a training checkpoint (EMA weights by default), samples with the chosen solver and writes
``samples.png`` (image grid, or scatter over the data for 2-D points) and ``samples.npz`` (key ``samples``,
plus ``nfe`` and ``wall_time``) into the run directory (``outputs/samples/DATE/TIME/``); with ``save_images=true``
also one PNG per image, ``images/000000.png``, ``images/000001.png``, ... Under ``torchrun --nproc_per_node=N``
the batches are dealt to the ranks and rank 0 gathers and writes them; sample i is the same for any N
(:mod:`scoresde.distributed`). Ctrl-C keeps the finished batches: they are written and counted in one line.
``python -m scoresde.sample list_solvers=true`` lists every solver with its options and defaults.
"""

from __future__ import annotations

import inspect
import logging
from pathlib import Path

import hydra
import numpy as np
import torch
from omegaconf import DictConfig

from .._instantiate import instantiate
from ..distributed import SamplingInterrupted, sample_sharded
from ..solvers.schedule_file import schedule_for_checkpoint
from ..training.checkpoint import load_checkpoint
from ._consistency import sampling_solver, solver_overridden
from ._runtime import CONF_DIR, SettingError, plain_config, run_command
from .snapshots import SampleSnapshot

log = logging.getLogger("scoresde.sample")


def save_images(x: torch.Tensor, directory: Path, data_range: tuple[float, float]) -> list[Path]:
    """One PNG per image, ``directory/000000.png`` ...: x of shape (B, C, H, W) in ``data_range``, C in (1, 3)."""
    import matplotlib.image

    directory.mkdir(parents=True, exist_ok=True)
    lo, hi = data_range
    pixels = ((x.detach().float().cpu() - lo) / (hi - lo)).clamp(0, 1)
    pixels = (pixels * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()  # (B, H, W, C)
    paths = []
    for i, image in enumerate(pixels):
        path = directory / f"{i:06d}.png"
        if image.shape[-1] == 1:
            matplotlib.image.imsave(path, image[..., 0], cmap="gray", vmin=0, vmax=255)
        else:
            matplotlib.image.imsave(path, image)
        paths.append(path)
    return paths


def _write(writer, run_dir: Path, x, step: int, spent, cfg, kind: str, data_range, **extra) -> list[Path]:
    """samples.png, samples.npz (``extra`` arrays beside ``samples``) and, with ``save_images``, images/NNNNNN.png;
    returns the paths written."""
    path = writer.write(x, step, nfe=spent, name="samples")
    np.savez_compressed(run_dir / "samples.npz", samples=x.numpy(), **extra)
    written = [path, run_dir / "samples.npz"]
    if cfg.get("save_images") and kind == "image":
        save_images(x, run_dir / "images", data_range)
        written.append(run_dir / "images")
    return written


def run(cfg: DictConfig, run_dir: Path, device) -> Path | None:
    """Sample as ``cfg`` says; returns the PNG path (None on ranks other than 0)."""
    config = plain_config(cfg)
    ckpt = load_checkpoint(config["ckpt"], map_location=device, ema=bool(cfg.ema))
    kind = ckpt.config["data"].get("kind", "image")
    if cfg.get("save_images") and kind != "image":
        raise SettingError(f"save_images=true writes one PNG per image, but {ckpt.path} models 2-D points "
                           "(kind=points): samples.npz holds them")  # fmt: skip
    dataset = ckpt.load_dataset() if kind == "points" else None
    data_range = tuple(ckpt.config["data"]["dataset"].get("data_range", (-1.0, 1.0)))
    if config.get("task") is not None:  # conditional generation (conf/task/*.yaml; scoresde.cli.tasks)
        task, solver = instantiate(config["task"]), instantiate(config["solver"])
        options = {"progress": bool(cfg.progress)} if "progress" in inspect.signature(task.run).parameters else {}
        log.info("checkpoint %s (step %d), task %s, solver %s", ckpt.path, ckpt.step, type(task).__name__,
                 config["solver"].get("_target_"))  # fmt: skip
        try:
            path = task.run(ckpt=ckpt, solver=solver, n=int(cfg.n), steps=cfg.steps, seed=int(cfg.seed),
                            device=device, run_dir=run_dir, **options)  # fmt: skip
        except ValueError as err:  # the task's settings (mask, n, label, ...) do not fit this checkpoint
            raise SettingError(str(err)) from err
        log.info("wrote %s and %s", path, path.with_suffix(".npz"))
        return path
    # a consistency checkpoint samples with Algorithm 1 (solver=consistency) to its own eps
    solver = sampling_solver(ckpt.model, instantiate(config["solver"]), solver_overridden())
    extra = {"eps": ckpt.model.eps} if getattr(ckpt.model, "is_consistency_model", False) else {}
    writer = SampleSnapshot(
        run_dir,
        ckpt.event_shape,
        solver,
        n=int(cfg.n),
        steps=cfg.steps,
        kind=kind,
        data_range=data_range,
        reference=dataset.train[:4000] if dataset is not None else None,
        seed=int(cfg.seed),
    )
    log.info("checkpoint %s (step %d, %s weights), solver %s", ckpt.path, ckpt.step, "EMA" if cfg.ema else "raw",
             type(solver).__name__)  # fmt: skip
    times = None
    if cfg.get("grid") == "optimized":  # the schedule `python -m scoresde.schedule` saved beside the checkpoint
        schedule = schedule_for_checkpoint(ckpt.path, writer.solver, cfg.get("nfe"), 1e-3)
        writer.solver, times = schedule.solver_for(writer.solver), schedule.times  # the variant it was optimised for
        log.info("optimised schedule (%s, start %s): %s", writer.solver, schedule.start,
                 ", ".join(f"{t:.4g}" for t in times.tolist()))  # fmt: skip
    try:
        x, info = sample_sharded(ckpt.sde, ckpt.model, int(cfg.n), ckpt.event_shape, seed=int(cfg.seed),
                                 batch_size=int(cfg.get("batch_size") or cfg.n), device=device, solver=writer.solver,
                                 steps=cfg.steps, nfe=cfg.get("nfe"), progress=bool(cfg.progress), times=times,
                                 **extra)  # fmt: skip
    except SamplingInterrupted as stop:
        if stop.samples is None:
            raise KeyboardInterrupt(f"no batch of {cfg.get('batch_size') or cfg.n} samples had finished") from None
        written = _write(writer, run_dir, stop.samples, ckpt.step, None, cfg, kind, data_range, complete=False)
        raise KeyboardInterrupt(
            f"kept the {len(stop.samples)} finished samples of {stop.n} (samples 0..{len(stop.samples) - 1}): "
            + ", ".join(str(p) for p in written)
        ) from None
    if x is None:
        return None
    nfe = max(info.nfe)
    arrays = {"nfe": nfe, "nfe_per_batch": np.array(info.nfe), "wall_time": info.wall_time,
              "world_size": info.world_size}  # fmt: skip
    written = _write(writer, run_dir, x, ckpt.step, nfe, cfg, kind, data_range, **arrays)
    log.info("%d samples in %.2f s on %d process(es) (%d score evaluations per batch): %s", x.shape[0],
             info.wall_time, info.world_size, nfe, ", ".join(str(p) for p in written))  # fmt: skip
    return written[0]


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="sample")
def main(cfg: DictConfig) -> None:
    """Console-script entry point (``scoresde-sample``)."""
    run_command(cfg, run)


if __name__ == "__main__":
    main()
