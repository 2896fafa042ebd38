"""The CLI side of consistency models: checking a consistency run's settings and teacher before anything is
written, building the student (from the teacher's weights where the architectures match) and choosing the sampler.

A consistency run is one whose config has a ``consistency`` block (conf/train/consistency_*.yaml); ``teacher`` is
a score checkpoint (file or run directory) or ``oracle`` (the exact score of an oracle dataset).
"""

from __future__ import annotations

import logging
import math
from pathlib import Path
from typing import Any

from torch import nn

from .._instantiate import instantiate
from .._validation import check_int, is_real
from ..consistency import OUTPUTS
from ..consistency.build import build_consistency_model, resolve_output, resolve_sigma_data
from ..training.checkpoint import Checkpoint, load_checkpoint

log = logging.getLogger("scoresde.train")

NEEDS_TEACHER = {
    "scoresde.consistency.ConsistencyDistillation": "a teacher: teacher=RUN (a score checkpoint) or teacher=oracle",
    "scoresde.consistency.ConsistencyTuning": "the diffusion model to start from: teacher=RUN (a score checkpoint)",
}


def is_consistency_run(c: dict[str, Any]) -> bool:
    return c.get("consistency") is not None


def _objective_target(c: dict[str, Any]) -> str:
    return str(c["train"].get("objective", {}).get("_target_", ""))


def load_teacher(c: dict[str, Any], device: Any = "cpu") -> Checkpoint | None:
    """The teacher checkpoint named by ``teacher`` (None for no teacher or ``oracle``), checked against the run:
    a score model (not a consistency model) of the same SDE and event shape. Every problem raises ValueError
    naming ``teacher``."""
    teacher = c.get("teacher")
    if teacher in (None, "oracle"):
        return None
    if not isinstance(teacher, str) or not teacher:
        raise ValueError(f"teacher must be a checkpoint file, a run directory or 'oracle', got {teacher!r}")
    if not Path(teacher).exists():
        raise ValueError(f"teacher={teacher!r}: no such checkpoint file or run directory")
    try:
        ckpt = load_checkpoint(teacher, map_location=device)
    except Exception as err:  # a damaged file, a foreign pickle, a config that no longer builds
        raise ValueError(f"teacher={teacher!r} cannot be loaded: {type(err).__name__}: {err}") from None
    if getattr(ckpt.model, "is_consistency_model", False):
        raise ValueError(f"teacher={teacher!r} is a consistency model; the teacher must be a score model")
    sde = instantiate(c["sde"])
    if type(sde) is not type(ckpt.sde) or repr(sde) != repr(ckpt.sde):
        raise ValueError(f"teacher={teacher!r} was trained for {ckpt.sde!r} but this run's sde is {sde!r}: pass the "
                         "teacher's sde (e.g. sde=ve with its parameters)")  # fmt: skip
    if c["data"]["dataset"] != ckpt.config["data"]["dataset"]:
        shape = tuple(instantiate(c["data"]["dataset"]).event_shape)
        if shape != ckpt.event_shape:
            raise ValueError(f"teacher={teacher!r} models data of shape {ckpt.event_shape} but this run's data has "
                             f"shape {shape}")  # fmt: skip
    return ckpt


def validate_consistency(c: dict[str, Any]) -> None:
    """Every setting of a consistency run, the teacher included (called by the train preflight)."""
    block = c["consistency"]
    if not isinstance(block, dict):
        raise ValueError(f"consistency must be a mapping (eps, output, sigma_data, ...), got {block!r}")
    if block.get("output", "auto") not in (*OUTPUTS, "auto"):
        raise ValueError(f"consistency.output must be one of auto, {', '.join(OUTPUTS)}; got {block.get('output')!r}")
    if not isinstance(block.get("init_from_teacher", True), bool):
        raise ValueError(f"consistency.init_from_teacher must be true or false, got {block['init_from_teacher']!r}")
    for key in ("sigma_data", "input_sigma_data"):
        value = block.get(key, "auto")
        if value != "auto" and not (is_real(value) and math.isfinite(value) and value > 0):
            raise ValueError(f"consistency.{key} must be auto (the teacher's, else measured from the training data) "
                             f"or a positive finite number, got {value!r}")  # fmt: skip
    check_int("consistency.sample_steps", block.get("sample_steps", 1))
    target, teacher = _objective_target(c), c.get("teacher")
    if target in NEEDS_TEACHER and teacher in (None, "???"):
        raise ValueError(f"teacher: train={target.rsplit('.', 1)[-1]} needs {NEEDS_TEACHER[target]}")
    if teacher == "oracle":
        if target != "scoresde.consistency.ConsistencyDistillation":
            raise ValueError("teacher=oracle is for consistency distillation only (tuning starts from a checkpoint)")
        if getattr(instantiate(c["data"]["dataset"]), "oracle", None) is None:
            raise ValueError(f"teacher=oracle needs a dataset with an exact score (data=gaussian, mixture or "
                             f"eight_gaussians), got {c['data']['dataset'].get('_target_')}")  # fmt: skip
    student_config(c, load_teacher(c))


def student_config(c: dict[str, Any], teacher: Checkpoint | None) -> bool:
    """Resolve ``consistency.output`` in place; return whether the student starts from the teacher's weights."""
    block = c["consistency"]
    init = teacher is not None and bool(block.get("init_from_teacher", True))
    same_net = teacher is not None and teacher.config["model"]["net"] == c["model"]["net"]
    block["output"] = resolve_output(block.get("output", "auto"), teacher.config["model"] if same_net else None)
    if init and not same_net:
        log.info("the student's model.net differs from the teacher's: the student starts from random weights")
    return init and same_net


def build_student(c: dict[str, Any], sde, event_shape, device, data) -> tuple[nn.Module, Any]:
    """The student and the teacher's score (or None); ``c`` gets the resolved ``consistency`` block (output,
    sigma_data and input_sigma_data: the teacher's, or measured from the training ``data``), which the
    checkpoints store."""
    teacher = load_teacher(c, device)
    init = student_config(c, teacher)
    resolve_sigma_data(c["consistency"], teacher.model if teacher is not None else None, init, data)
    model = build_consistency_model(c["model"], c["consistency"], sde, event_shape).to(device)
    block = c["consistency"]
    if init:
        model.net.load_state_dict(teacher.model.net.state_dict())
        log.info("student starts from the teacher's EMA weights (%s, output=%s)", teacher.path, block["output"])
    log.info("student: sigma_data=%.4g (c_skip, c_out), c_in = 1 / sqrt(s^2 + m^2 %.4g^2)",
             model.sigma_data, model.input_sigma_data)  # fmt: skip
    if c.get("teacher") == "oracle":
        return model, instantiate(c["data"]["dataset"]).oracle.score_fn(sde)
    return model, teacher.model if teacher is not None else None


def sampling_solver(model: nn.Module, solver: Any, explicit: bool) -> Any:
    """The sampler for a checkpoint: a consistency model gets :class:`ConsistencySampler` unless one was chosen."""
    from ..consistency import ConsistencySampler

    if not getattr(model, "is_consistency_model", False) or isinstance(solver, ConsistencySampler):
        return solver
    if explicit:
        raise ValueError(f"solver: the checkpoint is a consistency model, sample it with solver=consistency (got "
                         f"{type(solver).__name__})")  # fmt: skip
    return ConsistencySampler()


def solver_overridden() -> bool:
    """Whether ``solver=...`` was given on the command line of this hydra run (False outside hydra)."""
    try:
        from hydra.core.hydra_config import HydraConfig

        overrides = HydraConfig.get().overrides.task
    except ValueError:
        return False
    return any(o.split("=", 1)[0].lstrip("+~") == "solver" for o in overrides)
