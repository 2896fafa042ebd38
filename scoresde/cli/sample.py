"""``python -m scoresde.sample ckpt=PATH solver=pc|ode|ald|euler_maruyama n=64`` / ``scoresde-sample``.

Loads a training checkpoint (EMA weights by default), samples with the chosen solver and writes
``samples.png`` (image grid, or scatter over the data for 2-D points) and ``samples.npz`` (key ``samples``,
plus ``nfe`` and ``wall_time``) into the run directory (``outputs/samples/DATE/TIME/``). Under
``torchrun --nproc_per_node=N`` the batches are dealt to the ranks and rank 0 gathers and writes them; sample i is
the same for any N (:mod:`scoresde.distributed`).
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import numpy as np
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from .._instantiate import instantiate
from ..distributed import sample_sharded
from ..training.checkpoint import load_checkpoint
from ..training.snapshots import SampleSnapshot
from ._consistency import sampling_solver, solver_overridden
from ._runtime import CONF_DIR, exit_on_error, finish, plain_config, setup_runtime, shared_run_dir

log = logging.getLogger("scoresde.sample")


def run(cfg: DictConfig, run_dir: Path, device) -> Path | None:
    """Sample as ``cfg`` says; returns the PNG path (None on ranks other than 0)."""
    config = plain_config(cfg)
    ckpt = load_checkpoint(config["ckpt"], map_location=device, ema=bool(cfg.ema))
    kind = ckpt.config["data"].get("kind", "image")
    dataset = ckpt.load_dataset() if kind == "points" else None
    data_range = tuple(ckpt.config["data"]["dataset"].get("data_range", (-1.0, 1.0)))
    if config.get("task") is not None:  # conditional generation (conf/task/*.yaml; scoresde.conditioning.tasks)
        task, solver = instantiate(config["task"]), instantiate(config["solver"])
        return task.run(ckpt=ckpt, solver=solver, n=int(cfg.n), steps=cfg.steps, seed=int(cfg.seed), device=device,
                        run_dir=run_dir)  # fmt: skip
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
    x, info = sample_sharded(ckpt.sde, ckpt.model, int(cfg.n), ckpt.event_shape, seed=int(cfg.seed),
                             batch_size=int(cfg.get("batch_size") or cfg.n), device=device, solver=writer.solver,
                             steps=cfg.steps, nfe=cfg.get("nfe"), progress=bool(cfg.progress), **extra)  # fmt: skip
    if x is None:
        return None
    nfe = max(info.nfe)
    path = writer.write(x, ckpt.step, nfe=nfe, name="samples")
    np.savez_compressed(run_dir / "samples.npz", samples=x.numpy(), nfe=nfe, nfe_per_batch=np.array(info.nfe),
                        wall_time=info.wall_time, world_size=info.world_size)  # fmt: skip
    log.info("%d samples in %.2f s on %d process(es) (%d score evaluations per batch): %s and %s", x.shape[0],
             info.wall_time, info.world_size, nfe, path, run_dir / "samples.npz")  # fmt: skip
    return path


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="sample")
def _main(cfg: DictConfig) -> None:
    run_dir = Path(HydraConfig.get().runtime.output_dir)
    with exit_on_error(run_dir, fresh=True):  # settings were checked by the preflight (scoresde/cli/_preflight.py)
        runtime = setup_runtime(cfg.device, cfg.threads)
        run(cfg, shared_run_dir(run_dir, runtime), runtime.device)
        finish(runtime)


def main() -> None:
    """Console-script entry point (``scoresde-sample``)."""
    _main()


if __name__ == "__main__":
    main()
