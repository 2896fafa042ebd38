"""Building a consistency model (student) from a run's configuration, for training and for loading checkpoints."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import Tensor, nn

from .._instantiate import instantiate
from ..models.parameterization import measure_sigma_data
from ..sde import SDE
from .parameterization import ConsistencyModel

STUDENT_OUTPUT = {"eps": "eps", "x0": "x0"}
"""The consistency output that continues a score network of each prediction type (``output=auto``)."""


def resolve_output(output: str, teacher_model_config: Mapping[str, Any] | None) -> str:
    """``consistency.output``: "auto" becomes the teacher's prediction where a student can start from its weights
    ("eps" or "x0"), else the paper's "edm"; other values are returned as they are."""
    if output != "auto":
        return output
    if teacher_model_config is None:
        return "edm"
    return STUDENT_OUTPUT.get(teacher_model_config.get("prediction", "eps"), "edm")


LEGACY_INPUT_SIGMA_DATA = 1.0
"""sd_in of a ``consistency`` block without ``input_sigma_data``: c_in = 1 / sqrt(m^2 + s^2), the rule of the
checkpoints written before the student took its teacher's input scaling (they load and sample as they did)."""


def resolve_sigma_data(
    consistency: dict[str, Any], teacher: nn.Module | None, from_teacher: bool, data: Tensor
) -> None:
    """Resolve ``sigma_data: auto`` and ``input_sigma_data: auto`` of a run's ``consistency`` block in place.

    ``sigma_data`` (c_skip, c_out): the teacher's (``teacher.sigma_data``, measured from its training data and
    stored in its checkpoint) where it has one, else measured from ``data`` (:func:`measure_sigma_data`).
    ``input_sigma_data`` (c_in): for a student that starts from the teacher's weights (``from_teacher``), the
    teacher's c_in rule (its sigma_data, or 1 for a ScoreModel without one), so that its network sees exactly the
    teacher network's input; otherwise ``sigma_data`` (EDM's c_in). Numbers are kept as they are.
    """
    teacher_sd = getattr(teacher, "sigma_data", None)
    teacher_sd = None if teacher_sd is None else float(teacher_sd)
    if consistency.get("sigma_data", "auto") == "auto":
        consistency["sigma_data"] = teacher_sd if teacher_sd is not None else measure_sigma_data(data)
    if consistency.get("input_sigma_data") == "auto":
        if from_teacher:
            consistency["input_sigma_data"] = 1.0 if teacher_sd is None else teacher_sd
        else:
            consistency["input_sigma_data"] = consistency["sigma_data"]


def build_consistency_model(
    model_config: Mapping[str, Any], consistency: Mapping[str, Any], sde: SDE, event_shape: tuple[int, ...]
) -> nn.Module:
    """A :class:`ConsistencyModel` from a model config's ``net`` block (the score network's architecture) and the
    run's ``consistency`` block (eps, output, sigma_data, input_sigma_data; resolved, no "auto" left: see
    :func:`resolve_output`, :func:`resolve_sigma_data`). A block without ``input_sigma_data`` is one of a
    checkpoint written before it existed: :data:`LEGACY_INPUT_SIGMA_DATA`."""
    if "net" not in model_config:
        raise ValueError(f"the model config needs a 'net' block, got keys {sorted(model_config)}")
    for key in ("output", "sigma_data", "input_sigma_data"):
        if consistency.get(key) == "auto":
            raise ValueError(f"consistency.{key}=auto must be resolved before the model is built")
    net = instantiate(model_config["net"], event_shape=tuple(event_shape))
    options = {k: consistency[k] for k in ("eps", "output", "sigma_data") if k in consistency}
    options["input_sigma_data"] = consistency.get("input_sigma_data", LEGACY_INPUT_SIGMA_DATA)
    # the score network's time input, so that a teacher's weights mean the same to the student (a discrete-level
    # teacher's index is continued as continuous time)
    time_input = "log_sigma" if model_config.get("time_input") == "log_sigma" else "continuous"
    return ConsistencyModel(net, sde, num_levels=int(model_config.get("num_levels", 1000)), time_input=time_input,
                            scale_input=bool(model_config.get("scale_input", True)), **options)  # fmt: skip
