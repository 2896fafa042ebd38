"""``python -m scoresde.sample ckpt=PATH solver=pc|ode|ald|euler_maruyama n=64`` / ``scoresde-sample``.

Loads a training checkpoint (EMA weights by default), samples with the chosen solver and writes
``samples.png`` (image grid, or scatter over the data for 2-D points) and ``samples.npz`` (key ``samples``,
plus ``nfe`` and ``wall_time``) into the run directory (``outputs/samples/DATE/TIME/``).
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import numpy as np
from hydra.core.hydra_config import HydraConfig
from omegaconf import DictConfig

from .._instantiate import instantiate
from ..checkpoint import load_checkpoint
from ..snapshots import SampleSnapshot
from ._runtime import CONF_DIR, finish, plain_config, setup_runtime

log = logging.getLogger("scoresde.sample")


def run(cfg: DictConfig, run_dir: Path, device) -> Path:
    """Sample as ``cfg`` says; returns the PNG path."""
    config = plain_config(cfg)
    ckpt = load_checkpoint(config["ckpt"], map_location=device, ema=bool(cfg.ema))
    kind = ckpt.config["data"].get("kind", "image")
    dataset = ckpt.load_dataset() if kind == "points" else None
    data_range = tuple(ckpt.config["data"]["dataset"].get("data_range", (-1.0, 1.0)))
    writer = SampleSnapshot(
        run_dir,
        ckpt.event_shape,
        instantiate(config["solver"]),
        n=int(cfg.n),
        steps=cfg.steps,
        sample_options={"nfe": cfg.nfe} if cfg.get("nfe") is not None else None,
        kind=kind,
        data_range=data_range,
        reference=dataset.train[:4000] if dataset is not None else None,
        seed=int(cfg.seed),
    )
    log.info("checkpoint %s (step %d, %s weights), solver %s", ckpt.path, ckpt.step, "EMA" if cfg.ema else "raw",
             config["solver"].get("_target_"))  # fmt: skip
    x, info = writer.draw(ckpt.model, ckpt.step)
    path = writer.write(x, ckpt.step, nfe=info.nfe, name="samples")
    np.savez_compressed(run_dir / "samples.npz", samples=x.cpu().numpy(), nfe=info.nfe, wall_time=info.wall_time)
    log.info("%d samples in %.2f s (%d score evaluations): %s and %s", x.shape[0], info.wall_time, info.nfe, path,
             run_dir / "samples.npz")  # fmt: skip
    return path


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="sample")
def _main(cfg: DictConfig) -> None:
    runtime = setup_runtime(cfg.device, cfg.threads)
    run(cfg, Path(HydraConfig.get().runtime.output_dir), runtime.device)
    finish(runtime)


def main() -> None:
    """Console-script entry point (``scoresde-sample``)."""
    _main()


if __name__ == "__main__":
    main()
