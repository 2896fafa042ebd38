"""``python -m scoresde.schedule ckpt=RUN solver=unipc nfe=10`` / ``scoresde-schedule``.

Optimises the time grid of one deterministic solver at one budget for a trained model
(:func:`scoresde.optimize_schedule`: pilot starts, a high-accuracy solve of the model's own probability-flow ODE,
dynamic programming and coordinate descent) and saves it beside the checkpoint as
``<run>/schedules/<solver>_nfe<nfe>.json``, where ``python -m scoresde.sample ... grid=optimized`` and
``benchmarks/fid_sweep.py ... grid=optimized`` find it. A copy goes into the run directory
(``outputs/schedule/DATE/TIME/schedule.json``); the log states the pilot cost in score evaluations.
"""

from __future__ import annotations

import logging
import shutil
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig

from .._instantiate import instantiate
from ..solvers.schedule import optimize_schedule
from ..solvers.schedule_file import Schedule, file_digest, save_schedule, schedule_path, solver_name
from ..training.checkpoint import load_checkpoint
from ._runtime import CONF_DIR, plain_config, run_command

log = logging.getLogger("scoresde.schedule")


def run(cfg: DictConfig, run_dir: Path, device: torch.device) -> Path:
    """Optimise and save the schedule as ``cfg`` says; returns the path beside the checkpoint."""
    config = plain_config(cfg)
    ckpt = load_checkpoint(config["ckpt"], map_location=device, ema=bool(cfg.ema))
    solver = instantiate(config["solver"])
    nfe = int(cfg.nfe)
    generator = torch.Generator(device).manual_seed(int(cfg.seed))
    log.info("optimising the %s grid at nfe=%d for %s (step %d) from %d pilot starts", solver_name(solver), nfe,
             ckpt.path, ckpt.step, int(cfg.pilots))  # fmt: skip
    schedule = optimize_schedule(ckpt.sde, ckpt.score_fn, (int(cfg.pilots), *ckpt.event_shape), solver=solver, nfe=nfe,
                                 eps=float(cfg.eps), fine=int(cfg.fine), teacher_refine=int(cfg.teacher_refine),
                                 sweeps=int(cfg.sweeps), variants=bool(cfg.variants),
                                 budget=None if cfg.budget is None else int(cfg.budget), generator=generator,
                                 device=device,
                                 dtype=getattr(torch, str(cfg.dtype)))  # fmt: skip
    schedule = Schedule(**(vars(schedule) | {"checkpoint": file_digest(ckpt.path)}))
    path = save_schedule(schedule, schedule_path(ckpt.path.parent, schedule.solver, nfe))
    shutil.copyfile(path, run_dir / "schedule.json")
    log.info("pilot cost %d score evaluations (%d calls x %d pilots, budget %d); check-pilot endpoint MSE %.4g "
             "against %.4g for the solver as configured on its default grid; chosen: %s from the %s grid -> %s",
             schedule.pilot_evaluations, schedule.pilot_calls, schedule.pilots, schedule.extra["budget"],
             schedule.pilot_error, schedule.default_error, schedule.options, schedule.start, path)  # fmt: skip
    return path


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="schedule")
def main(cfg: DictConfig) -> None:
    """Console-script entry point (``scoresde-schedule``)."""
    run_command(cfg, run)


if __name__ == "__main__":
    main()
