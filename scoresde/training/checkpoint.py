"""Training checkpoints: atomic writes, keep-last-K rotation, exact RNG round trips, and loading for sampling.

A checkpoint is a plain dict of tensors and primitive containers (loadable with
``torch.load(path, weights_only=True)``, no pickled code)::

    {"format": "scoresde-checkpoint", "version": 1, "step": int, "event_shape": [..],
     "model": state_dict, "ema": {"model": state_dict, "num_updates": int, "decay": float},
     "optimizer": state_dict, "grad_scaler": state_dict | None, "rng": {...}, "data_order": {...},
     "config": the resolved training config as nested dicts}
"""

from __future__ import annotations

import os
import random
import re
import tempfile
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from .._instantiate import build_score_model, instantiate
from .._validation import check_int
from ..sde import SDE

FORMAT = "scoresde-checkpoint"
VERSION = 1
_NAME = re.compile(r"^ckpt_(\d+)\.pt$")


class CheckpointError(ValueError):
    """A checkpoint file that cannot be read or does not fit the model it is loaded into."""


class CheckpointWriteError(OSError):
    """A checkpoint could not be written (a full disk, a read-only directory); the message names the file."""


# ---------------------------------------------------------------------------------------------- files
def save_atomic(state: Mapping[str, Any], path: str | Path) -> Path:
    """``torch.save`` to a temporary file in the same directory, fsync it, then ``os.replace`` it onto ``path``.

    A crash at any moment leaves either the old file or the complete new one, never a truncated file.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save(dict(state), f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException as err:
        Path(tmp).unlink(missing_ok=True)
        if isinstance(err, (OSError, RuntimeError)):  # torch reports a failed write as a RuntimeError
            lines = str(err).splitlines()
            raise CheckpointWriteError(
                f"could not write the checkpoint {path}: {lines[0] if lines else type(err).__name__}"
            ) from err
        raise
    return path


def read_checkpoint(path: str | Path, *, map_location: str | torch.device = "cpu") -> dict[str, Any]:
    """Load a checkpoint dict with ``weights_only=True``; a missing, truncated or foreign file raises a clear error."""
    path = Path(path)
    if not path.is_file():
        hint = " (it is a directory: pass a .pt file, or use load_checkpoint, which takes run directories)"
        raise FileNotFoundError(f"no checkpoint file at {path}" + (hint if path.is_dir() else ""))
    try:
        state = torch.load(path, map_location=map_location, weights_only=True)
    except Exception as err:  # torch raises RuntimeError, UnpicklingError, EOFError ... for damaged files
        raise CheckpointError(
            f"cannot read checkpoint {path} ({path.stat().st_size} bytes): the file is truncated, corrupt or not "
            f"a scoresde checkpoint ({type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
        ) from err
    if not isinstance(state, dict) or state.get("format") != FORMAT:
        raise CheckpointError(f"{path} is not a scoresde checkpoint (no 'format': {FORMAT!r} entry)")
    if state.get("version") != VERSION:
        raise CheckpointError(f"{path} has checkpoint version {state.get('version')}, this code reads {VERSION}")
    return state


class DamagedCheckpointWarning(UserWarning):
    """A checkpoint file was skipped (or set aside) because it cannot be read; the message names the file."""


def checkpoint_step(path: Path) -> int | None:
    """The step in a ``ckpt_<step>.pt`` file name (None for other names)."""
    m = _NAME.match(path.name)
    return int(m.group(1)) if m else None


def set_aside(path: Path) -> Path:
    """Rename a damaged checkpoint to ``<name>.damaged`` so that no rotation or lookup counts it again."""
    target = path.with_name(path.name + ".damaged")
    os.replace(path, target)
    warnings.warn(f"set aside the damaged checkpoint {path} as {target.name}", DamagedCheckpointWarning, stacklevel=2)
    return target


class CheckpointManager:
    """Checkpoints ``ckpt_<step>.pt`` in one directory, keeping the newest ``keep_last``.

    Rotation only ever deletes files named ``ckpt_<step>.pt`` with a step BELOW the one just written: a file of a
    later step (written before a resume from an earlier checkpoint) is never deleted by it.
    """

    def __init__(self, directory: str | Path, keep_last: int = 3) -> None:
        self.directory = Path(directory)
        self.keep_last = check_int("keep_last", keep_last)

    def paths(self) -> list[Path]:
        """Existing checkpoints, oldest first."""
        if not self.directory.is_dir():
            return []
        found = [(step, p) for p in self.directory.iterdir() if (step := checkpoint_step(p)) is not None]
        return [p for _, p in sorted(found)]

    def latest(self) -> Path | None:
        """The newest checkpoint file by step (not checked for damage; see :meth:`newest_valid`)."""
        paths = self.paths()
        return paths[-1] if paths else None

    def newest_valid(self, *, map_location: str | torch.device = "cpu") -> tuple[Path, dict[str, Any]] | None:
        """The newest checkpoint that reads, with its state; damaged newer ones are skipped with a warning."""
        for path in reversed(self.paths()):
            try:
                return path, read_checkpoint(path, map_location=map_location)
            except CheckpointError as err:
                warnings.warn(f"skipping the damaged checkpoint {path}: {err}", DamagedCheckpointWarning, stacklevel=2)
        return None

    def newer_than(self, step: int) -> tuple[list[Path], list[Path]]:
        """Checkpoints of later steps than ``step``: (readable ones, damaged ones)."""
        valid, damaged = [], []
        for path in self.paths():
            if checkpoint_step(path) > step:
                try:
                    read_checkpoint(path)
                    valid.append(path)
                except CheckpointError:
                    damaged.append(path)
        return valid, damaged

    def save(self, state: Mapping[str, Any]) -> Path:
        """Write ``state`` (with its ``"step"``) atomically, then keep the newest ``keep_last`` up to that step."""
        step = int(state["step"])
        path = save_atomic(state, self.directory / f"ckpt_{step:08d}.pt")
        older = [p for p in self.paths() if checkpoint_step(p) <= step]
        for old in older[: -self.keep_last]:
            old.unlink(missing_ok=True)
        return path


def open_checkpoint(path: str | Path, *, map_location: str | torch.device = "cpu") -> tuple[Path, dict[str, Any]]:
    """Read a checkpoint file, or the newest READABLE one of a run directory (or its ``checkpoints/`` folder).

    In a directory, damaged newer files are skipped with a :class:`DamagedCheckpointWarning` naming each; a damaged
    file given by name raises :class:`CheckpointError`.
    """
    path = Path(path)
    if path.is_dir():
        for directory in (path / "checkpoints", path):
            manager = CheckpointManager(directory)
            if manager.paths():
                found = manager.newest_valid(map_location=map_location)
                if found is None:
                    raise CheckpointError(f"every checkpoint in {directory} is damaged (the warnings name them)")
                return found
        raise FileNotFoundError(f"no checkpoint (ckpt_<step>.pt) in {path} or {path / 'checkpoints'}")
    return path, read_checkpoint(path, map_location=map_location)


# ---------------------------------------------------------------------------------------------- RNG
def rng_state(generators: Mapping[str, torch.Generator] | None = None) -> dict[str, Any]:
    """The global torch / CUDA / numpy / python RNG states and those of ``generators``, as plain containers."""
    keys, pos, has_gauss, cached = np.random.get_state()[1:]
    version, py_state, gauss = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],
        "numpy": {
            "keys": torch.from_numpy(keys.astype(np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },  # fmt: skip
        "python": {"version": version, "state": list(py_state), "gauss": gauss},
        "generators": {name: g.get_state() for name, g in (generators or {}).items()},
    }


def set_rng_state(state: Mapping[str, Any], generators: Mapping[str, torch.Generator] | None = None) -> None:
    """Restore what :func:`rng_state` saved (CUDA states only when as many devices are visible)."""
    torch.set_rng_state(state["torch"])
    if state["cuda"] and torch.cuda.is_available() and len(state["cuda"]) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(state["cuda"])
    npy = state["numpy"]
    keys = npy["keys"].numpy().astype(np.uint32)
    np.random.set_state(("MT19937", keys, npy["pos"], npy["has_gauss"], npy["cached_gaussian"]))
    py = state["python"]
    random.setstate((py["version"], tuple(py["state"]), py["gauss"]))
    for name, g in (generators or {}).items():
        if name not in state["generators"]:
            raise CheckpointError(f"the checkpoint holds no state for generator {name!r}")
        g.set_state(state["generators"][name])


# ---------------------------------------------------------------------------------------------- configs
def _flatten(tree: Any, prefix: str = "") -> dict[str, Any]:
    if isinstance(tree, Mapping):
        out: dict[str, Any] = {}
        for k, v in tree.items():
            out.update(_flatten(v, f"{prefix}.{k}" if prefix else str(k)))
        return out or {prefix: {}}
    return {prefix: tree}


def config_diff(
    saved: Mapping[str, Any], current: Mapping[str, Any], *, keys: tuple[str, ...] | None = None
) -> list[str]:
    """Lines ``"model.net.channels: checkpoint 32, config 64"`` for every leaf that differs.

    Args:
        saved: The config stored in the checkpoint.
        current: The config it is compared with.
        keys: Only compare these top-level sections (default: all).
    """
    a, b = _flatten(saved), _flatten(current)
    if keys is not None:
        inside = lambda k: k.split(".")[0] in keys
        a, b = {k: v for k, v in a.items() if inside(k)}, {k: v for k, v in b.items() if inside(k)}
    lines = []
    for k in sorted(a.keys() | b.keys()):
        va, vb = a.get(k, "<absent>"), b.get(k, "<absent>")
        if va != vb:
            lines.append(f"{k}: checkpoint {va!r}, config {vb!r}")
    return lines


def load_state_checked(module: nn.Module, state_dict: Mapping[str, Any], *, what: str, differences: list[str]) -> None:
    """``module.load_state_dict`` whose error names the config entries that differ from the checkpoint's."""
    try:
        module.load_state_dict(state_dict)
    except RuntimeError as err:
        detail = "\n  ".join(differences) if differences else "(the stored configs agree; the code changed?)"
        problems = "\n  ".join(str(err).splitlines()[1:6])
        raise CheckpointError(
            f"the checkpoint's {what} weights do not fit this model.\nConfig entries that differ:\n  {detail}\n"
            f"First state-dict problems:\n  {problems}"
        ) from None


# ---------------------------------------------------------------------------------------------- loading
@dataclass
class Checkpoint:
    """A trained score model ready for sampling, rebuilt from a checkpoint.

    Attributes:
        sde: The forward SDE the model was trained for.
        model: The ``ScoreModel`` in eval mode (EMA weights unless loaded with ``ema=False``).
        config: The resolved training config (plain nested dicts).
        step: The training step at which it was saved.
        event_shape: Shape of one sample, e.g. (1, 8, 8).
        path: The file it came from.
    """

    sde: SDE
    model: nn.Module
    config: dict[str, Any]
    step: int
    event_shape: tuple[int, ...]
    path: Path

    @property
    def score_fn(self) -> nn.Module:
        """The score function ``score_fn(x, t)`` (the model itself)."""
        return self.model

    def load_dataset(self):
        """Instantiate the training dataset from ``config["data"]["dataset"]`` (an ``ArrayDataset``)."""
        return instantiate(self.config["data"]["dataset"])


def load_checkpoint(path: str | Path, *, map_location: str | torch.device = "cpu", ema: bool = True) -> Checkpoint:
    """Rebuild the SDE and the score model of a training checkpoint.

    Args:
        path: A ``ckpt_<step>.pt`` file, or a run directory (its newest readable checkpoint; damaged newer files
            are skipped with a :class:`DamagedCheckpointWarning` naming them).
        map_location: Device for the weights.
        ema: Load the exponential-moving-average weights (the ones to sample with) rather than the raw ones.

    Example::

        ckpt = scoresde.load_checkpoint("outputs/2026-11-22/16-00-00")
        x, info = scoresde.sample(ckpt.sde, ckpt.score_fn, (64, *ckpt.event_shape))
    """
    path, state = open_checkpoint(path, map_location=map_location)
    config = state["config"]
    event_shape = tuple(int(n) for n in state["event_shape"])
    sde = instantiate(config["sde"])
    weights = state["ema"]["model"] if ema else state["model"]
    model_config = dict(config["model"])
    if model_config.get("sigma_data") == "auto" and "sigma_data" in weights:  # the measured value is in the weights
        model_config["sigma_data"] = float(weights["sigma_data"])
    if config.get("consistency") is not None:  # a consistency model (train=consistency_*), not a score model
        from ..consistency.build import build_consistency_model

        model = build_consistency_model(model_config, config["consistency"], sde, event_shape)
    else:
        model = build_score_model(model_config, sde, event_shape)
    load_state_checked(model, weights, what="EMA" if ema else "model", differences=[])
    model.to(map_location).eval().requires_grad_(False)
    return Checkpoint(sde=sde, model=model, config=config, step=int(state["step"]), event_shape=event_shape, path=path)
