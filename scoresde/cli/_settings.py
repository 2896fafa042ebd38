"""Validation of every CLI setting before the expensive part: each error names the key and what it accepts.

The objects a run builds from ``_target_`` blocks (train config, SDE, solver) are built here once, so that their
own argument checks run now rather than after training; the settings read by the CLI code itself (sample.*,
eval.*, threads, ...) are checked against the values that code accepts.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from .._instantiate import instantiate
from .._validation import check_positive, is_int, is_real
from ..likelihood.divergence import DIVERGENCES
from ..likelihood.ode import METHODS
from ..solvers.base import check_steps_or_nfe
from ._runtime import plain_config, resolve_device

DIVERGENCE_CHOICES = ("auto", *sorted(DIVERGENCES))
EVAL_KEYS = ("n_test", "divergence", "exact_max_dim", "rtol", "atol", "eps", "method", "n_probes", "draws")


def integer(key: str, value: Any, minimum: int, *, none: str | None = None) -> None:
    """An int >= minimum (or None, described by ``none``); bools and strings are refused."""
    if value is None and none is not None:
        return
    if not is_int(value) or value < minimum:
        also = f" or null ({none})" if none else ""
        raise ValueError(f"{key} must be an integer >= {minimum}{also}, got {value!r}")


def boolean(key: str, value: Any) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be true or false, got {value!r}")


def choice(key: str, value: Any, choices: tuple[str, ...] | frozenset[str]) -> None:
    if value not in choices:
        raise ValueError(f"{key} must be one of {', '.join(sorted(choices))}; got {value!r}")


def built(key: str, spec: Any) -> Any:
    """``instantiate(spec)``; a failure is reported under ``key``."""
    try:
        return instantiate(spec)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{key}: {err}") from None


def runtime_settings(c: dict[str, Any]) -> None:
    """seed, device, threads, progress: shared by every command."""
    integer("seed", c["seed"], 0)
    if not isinstance(c["device"], str):
        raise ValueError(f"device must be auto, cpu, cuda or cuda:N, got {c['device']!r}")
    try:
        resolve_device(c["device"])
    except ValueError as err:
        raise ValueError(f"device: {err}") from None
    integer("threads", c["threads"], 1, none="all cores in os.sched_getaffinity")
    boolean("progress", c["progress"])


def checkpoint_command(config: DictConfig) -> dict[str, Any]:
    """The settings of a command that loads a checkpoint, as plain containers, after checking ``ckpt`` and the
    runtime settings."""
    if OmegaConf.is_missing(config, "ckpt"):
        raise ValueError("ckpt=PATH is required: a checkpoint file (ckpt_<step>.pt) or a training run directory")
    if not Path(str(config.ckpt)).expanduser().exists():
        raise ValueError(f"ckpt: no checkpoint file or run directory at {config.ckpt}")
    c = plain_config(config)
    runtime_settings(c)
    return c


def eval_settings(e: dict[str, Any]) -> None:
    unknown = sorted(set(e) - set(EVAL_KEYS))
    if unknown:
        raise ValueError(f"eval has unknown key(s) {unknown}; known: {', '.join(EVAL_KEYS)}")
    integer("eval.n_test", e["n_test"], 0)
    choice("eval.divergence", e["divergence"], DIVERGENCE_CHOICES)
    integer("eval.exact_max_dim", e["exact_max_dim"], 1)
    for key in ("rtol", "atol", "eps"):
        if key in e:
            check_positive(f"eval.{key}", e[key])
    if "method" in e:
        choice("eval.method", e["method"], METHODS)
    for key in ("n_probes", "draws"):
        if key in e:
            integer(f"eval.{key}", e[key], 1)


def validate_train(config: DictConfig) -> None:
    """``python -m scoresde.train``: every setting, and the train config, SDE and solver built once."""
    c = plain_config(config)
    runtime_settings(c)
    if not isinstance(c["resume"], (bool, str)) and c["resume"] is not None:
        raise ValueError(f"resume must be true, false or a checkpoint/run-directory path, got {c['resume']!r}")
    integer("sample.n", c["sample"]["n"], 1)
    integer("sample.steps", c["sample"]["steps"], 1, none="the solver's default")
    eval_settings(c["eval"])
    boolean("data.dequantize", c["data"].get("dequantize", False))
    sigma_data = c["model"].get("sigma_data")
    if sigma_data not in (None, "auto") and not (is_real(sigma_data) and math.isfinite(sigma_data) and sigma_data > 0):
        raise ValueError(f"model.sigma_data must be auto (measured from the training data), null or a positive "
                         f"finite number, got {sigma_data!r}")  # fmt: skip
    built("train", c["train"])
    if c.get("consistency") is not None:  # train=consistency_*: the student's settings and the teacher
        from ._consistency import validate_consistency

        validate_consistency(c)
    sde = built("sde", c["sde"])
    solver = built("solver", c["solver"])
    steps = c["sample"]["steps"] or solver.default_steps
    try:
        solver.grid(sde, steps, 1e-3)
        solver.check(sde)
    except (TypeError, ValueError) as err:
        raise ValueError(f"solver with sample.steps={steps}: {err}") from None


def validate_sample(config: DictConfig) -> None:
    """``python -m scoresde.sample``."""
    c = checkpoint_command(config)
    integer("n", c["n"], 1)
    integer("steps", c["steps"], 1, none="the solver's default")
    integer("nfe", c.get("nfe"), 1, none="no budget (steps decide)")
    integer("batch_size", c.get("batch_size"), 1, none="n")
    check_steps_or_nfe(c["steps"], c.get("nfe"))
    boolean("ema", c["ema"])
    boolean("save_images", c.get("save_images", False))
    solver = built("solver", c["solver"])
    grid_setting(c.get("grid"), c.get("nfe"), solver)


def grid_setting(grid: Any, nfe: Any, solver: Any) -> None:
    """``grid``: null (the solver's grid) or "optimized" (the schedule saved beside the checkpoint, per budget)."""
    if grid is None:
        return
    if grid != "optimized":
        raise ValueError(f"grid must be null or optimized, got {grid!r} (a named grid is solver.grid=NAME)")
    if nfe is None:
        raise ValueError("grid=optimized needs nfe=N: a schedule is optimised for one budget")
    from ..solvers.schedule import check_deterministic

    try:
        check_deterministic(solver)
    except ValueError as err:
        raise ValueError(f"grid=optimized: {err}") from None


def validate_schedule(config: DictConfig) -> None:
    """``python -m scoresde.schedule``."""
    c = checkpoint_command(config)
    integer("nfe", c["nfe"], 1)
    integer("pilots", c["pilots"], 1)
    integer("fine", c["fine"], 1)
    integer("teacher_refine", c["teacher_refine"], 1)
    integer("sweeps", c["sweeps"], 0)
    integer("budget", c["budget"], 1, none="a tenth of a 50,000-sample run's evaluations, 5,000 nfe")
    boolean("variants", c["variants"])
    check_positive("eps", c["eps"])
    choice("dtype", c["dtype"], ("float32", "float64"))
    boolean("ema", c["ema"])
    grid_setting("optimized", c["nfe"], built("solver", c["solver"]))


def validate_likelihood(config: DictConfig) -> None:
    """``python -m scoresde.likelihood``."""
    c = checkpoint_command(config)
    choice("split", c["split"], ("test", "train"))
    integer("limit", c["limit"], 1, none="the whole split")
    for key in ("batch_size", "exact_max_dim", "n_probes", "n_dequant"):
        integer(key, c[key], 1)
    choice("divergence", c["divergence"], DIVERGENCE_CHOICES)
    choice("method", c["method"], METHODS)
    for key in ("rtol", "atol", "eps"):
        check_positive(key, c[key])
    if c["centred_bins"] != "auto" and not isinstance(c["centred_bins"], bool):
        raise ValueError(f"centred_bins must be true, false or auto, got {c['centred_bins']!r}")
    boolean("ema", c["ema"])


def validate_noisy_classifier(config: DictConfig) -> None:
    """``python -m scoresde.train_noisy_classifier``: the runtime settings and the SDE."""
    c = plain_config(config)
    integer("seed", c["seed"], 0)
    integer("threads", c["threads"], 1, none="all cores in os.sched_getaffinity")
    built("sde", c["sde"])


VALIDATORS: dict[str, Callable[[DictConfig], None]] = {
    "train": validate_train,
    "sample": validate_sample,
    "likelihood": validate_likelihood,
    "schedule": validate_schedule,
    "train_noisy_classifier": validate_noisy_classifier,
}
