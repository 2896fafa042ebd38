"""Build objects from plain ``_target_`` dictionaries (the resolved hydra config stored in checkpoints).

Only the CLI imports hydra; a checkpoint stores its config as plain dicts, and this small builder turns the
``_target_`` blocks back into objects so that :func:`scoresde.load_checkpoint` works without hydra.
"""

from __future__ import annotations

import importlib
from collections.abc import Mapping
from typing import Any

from torch import nn

from .sde import SDE

MOVED_MODULES: dict[str, str] = {
    "scoresde.train_config": "scoresde.training.config",
    "scoresde.objectives": "scoresde.training.objectives",
    "scoresde.ema": "scoresde.training.ema",
    "scoresde.checkpoint": "scoresde.training.checkpoint",
    "scoresde.snapshots": "scoresde.cli.snapshots",
    "scoresde.training.snapshots": "scoresde.cli.snapshots",
    "scoresde.conditioning.tasks": "scoresde.cli.tasks",
    "scoresde.conditioning.guidance_tasks": "scoresde.cli.guidance_tasks",
    "scoresde.evaluation": "scoresde.training.evaluation",
    "scoresde.divergence": "scoresde.likelihood.divergence",
    "scoresde.quantization": "scoresde.likelihood.quantization",
    "scoresde.baselines": "scoresde.likelihood.baselines",
}
"""Old module path -> new one, for modules moved into the ``training/``, ``likelihood/`` and ``cli/`` subpackages.

Checkpoints written before the move store the old ``_target_`` strings in their resolved config (e.g.
``scoresde.objectives.DSMObjective``); :func:`locate` rewrites them so that those checkpoints still load. The old
modules ``scoresde.training`` and ``scoresde.likelihood`` need no entry: they became the packages of the same name,
which re-export every public name the modules had (``scoresde.training.TrainConfig`` still resolves).
"""


def moved_target(target: str) -> str:
    """``target`` with a moved module prefix (a key of :data:`MOVED_MODULES`) replaced by its new path."""
    for old, new in MOVED_MODULES.items():
        if target == old or target.startswith(old + "."):
            return new + target[len(old) :]
    return target


def locate(target: str) -> Any:
    """Import ``"package.module.Name"`` like hydra does: attributes first, submodules when no attribute exists.

    So ``"scoresde.data.digits"`` is the function the package exports, not the module of the same name. Paths of
    modules that have moved are rewritten first (:data:`MOVED_MODULES`).
    """
    if not isinstance(target, str) or not target:
        raise ValueError(f"_target_ must be a dotted import path, got {target!r}")
    parts = moved_target(target).split(".")
    try:
        obj = importlib.import_module(parts[0])
    except ModuleNotFoundError as err:
        raise ValueError(f"cannot locate _target_ {target!r}: {err}") from None
    for depth, name in enumerate(parts[1:], start=2):
        if hasattr(obj, name):
            obj = getattr(obj, name)
            continue
        try:
            obj = importlib.import_module(".".join(parts[:depth]))
        except ModuleNotFoundError as err:
            raise ValueError(f"cannot locate _target_ {target!r}: {err}") from None
    return obj


def instantiate(spec: Any, **kwargs: Any) -> Any:
    """Recursively build ``{"_target_": path, **args}`` blocks; other values are returned as they are."""
    if isinstance(spec, Mapping):
        args = {k: instantiate(v) for k, v in spec.items() if k != "_target_"}
        if "_target_" not in spec:
            return {**args, **kwargs}
        return locate(spec["_target_"])(**args, **kwargs)
    if isinstance(spec, (list, tuple)):
        return [instantiate(v) for v in spec]
    return spec


def build_score_model(
    model_config: Mapping[str, Any], sde: SDE, event_shape: tuple[int, ...], data: Any = None
) -> nn.Module:
    """A ``scoresde.models.ScoreModel`` from a model config: ``net`` (a ``_target_`` block without event_shape)
    plus the wrapper's keyword arguments (``prediction``, ``time_input``, ``sigma_data``, ...; see
    :class:`~scoresde.models.ScoreModel`).

    ``sigma_data: auto`` is measured from ``data`` (the training split, (N, *event_shape)); it needs ``data``.
    """
    from .models import ScoreModel
    from .models.parameterization import measure_sigma_data

    if "net" not in model_config:
        raise ValueError(f"the model config needs a 'net' block, got keys {sorted(model_config)}")
    net = instantiate(model_config["net"], event_shape=tuple(event_shape))
    wrapper_args = {k: v for k, v in model_config.items() if k != "net"}
    if wrapper_args.get("sigma_data") == "auto":
        if data is None:
            raise ValueError("model.sigma_data=auto is measured from the training data: pass data= (or a number)")
        wrapper_args["sigma_data"] = measure_sigma_data(data)
    return ScoreModel(net, sde, **wrapper_args)
