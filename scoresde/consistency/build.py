"""Building a consistency model (student) from a run's configuration, for training and for loading checkpoints."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from .._instantiate import instantiate
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


def build_consistency_model(
    model_config: Mapping[str, Any], consistency: Mapping[str, Any], sde: SDE, event_shape: tuple[int, ...]
) -> nn.Module:
    """A :class:`ConsistencyModel` from a model config's ``net`` block (the score network's architecture) and the
    run's ``consistency`` block (eps, output, sigma_data; ``output`` must be resolved, not "auto")."""
    if "net" not in model_config:
        raise ValueError(f"the model config needs a 'net' block, got keys {sorted(model_config)}")
    net = instantiate(model_config["net"], event_shape=tuple(event_shape))
    options = {k: consistency[k] for k in ("eps", "output", "sigma_data") if k in consistency}
    # the score network's time input, so that a teacher's weights mean the same to the student (a discrete-level
    # teacher's index is continued as continuous time)
    time_input = "log_sigma" if model_config.get("time_input") == "log_sigma" else "continuous"
    return ConsistencyModel(net, sde, num_levels=int(model_config.get("num_levels", 1000)), time_input=time_input,
                            scale_input=bool(model_config.get("scale_input", True)), **options)  # fmt: skip
