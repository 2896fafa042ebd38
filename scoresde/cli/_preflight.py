"""Checks that run before hydra creates the run directory (a hydra callback, ``on_run_start``).

Everything a command could refuse is refused here, before anything is written: a bad setting, a run directory
that already holds another run, a resume whose overrides would change the run. A refusal prints one
``error: ...`` line (the traceback with ``SCORESDE_DEBUG=1``) and exits with status 2. On ``resume`` the composed
config is replaced by the checkpoint's, plus the overrides that may change (see :data:`RESUME_MAY_CHANGE`), so the
run's ``.hydra/config.yaml`` and its checkpoints record what actually runs.

The callback is configured in ``conf/{config,sample,likelihood}.yaml`` under ``hydra.callbacks``. Multirun jobs
skip it (hydra calls ``on_run_start`` only for single runs); their task functions still validate the settings.
"""

from __future__ import annotations

import copy
import os
import re
import sys
import tempfile
from pathlib import Path
from typing import Any

from hydra.core.override_parser.overrides_parser import OverridesParser
from hydra.experimental.callback import Callback
from omegaconf import DictConfig, OmegaConf, open_dict

from .._validation import check_choice
from ..training.checkpoint import CheckpointManager, checkpoint_step, config_diff, open_checkpoint
from ._runtime import HYDRA_FILES, exit_on_error, plain_config
from ._settings import VALIDATORS

RESUME_MAY_CHANGE = (
    "train.steps", "train.log_every", "train.sample_every", "train.checkpoint_every", "train.keep_checkpoints",
    "sample", "eval", "solver", "progress", "threads", "device", "resume",
)  # fmt: skip
"""Settings a resumed run may change from the command line; every other difference from the checkpoint is refused."""

_notes: list[str] = []


def take_notes() -> list[str]:
    """What the preflight decided (e.g. the settings a resume changed), for the task to log once logging is up."""
    notes = list(_notes)
    _notes.clear()
    return notes


def _is_main_process() -> bool:
    return int(os.environ.get("RANK", "0")) == 0


def override_keys(config: DictConfig) -> list[str]:
    """The keys or groups set on the command line (``train.lr=1`` -> ``train.lr``, ``train=ddpm`` -> ``train``)."""
    overrides = OverridesParser.create().parse_overrides(list(config.hydra.overrides.task))
    return [o.key_or_group for o in overrides if not o.key_or_group.startswith("hydra")]


def _within(key: str, prefixes: tuple[str, ...] | list[str]) -> bool:
    return any(key == p or key.startswith(p + ".") for p in prefixes)


STOPPED_RUN_FILES = HYDRA_FILES | {"metrics.jsonl", "checkpoints"}
"""What a training run has written when it is killed before its first checkpoint (besides sample grids)."""
_SAMPLE_GRID = re.compile(r"^samples_\d+\.(png|npz)$")


def stopped_before_first_checkpoint(run_dir: Path) -> bool:
    """Whether ``run_dir`` holds a training run that stopped before writing any checkpoint (then it may be reused)."""
    names = {p.name for p in run_dir.iterdir()}
    no_checkpoint = not any((run_dir / "checkpoints").glob("ckpt_*.pt"))
    written = {n for n in names if not _SAMPLE_GRID.match(n)}
    return "train.log" in names and written <= STOPPED_RUN_FILES and no_checkpoint


def claim_run_dir(config: DictConfig, command: str = "train") -> Path:
    """Make the run directory now, atomically; refuse one that holds files (or pick a fresh one for the default).

    Two runs started in the same second resolve the same default ``outputs/DATE/TIME``: the second gets
    ``TIME_1`` (``_2``, ...). An explicit ``hydra.run.dir`` that already holds files is refused, except one left
    by a training run stopped before its first checkpoint (nothing to resume there): its files are replaced.
    """
    run_dir = Path(str(OmegaConf.select(config, "hydra.run.dir"))).absolute()
    explicit = any(k.lstrip("+").startswith("hydra.run.dir=") for k in list(config.hydra.overrides.hydra))
    candidate, n = run_dir, 0
    while True:
        candidate.parent.mkdir(parents=True, exist_ok=True)
        try:
            candidate.mkdir()
            break
        except FileExistsError:
            if explicit:
                reusable = command == "train" and stopped_before_first_checkpoint(candidate)
                if candidate.is_dir() and (not any(candidate.iterdir()) or reusable):
                    break
                continue_hint = "pass resume=true to continue the run there, or " if command == "train" else ""
                raise ValueError(
                    f"the run directory {candidate} already holds files (another run?): {continue_hint}choose "
                    "another hydra.run.dir"
                ) from None
            n += 1
            candidate = run_dir.with_name(f"{run_dir.name}_{n}")
    if command == "train" and stopped_before_first_checkpoint(candidate):
        for stale in [candidate / "metrics.jsonl", *(p for p in candidate.iterdir() if _SAMPLE_GRID.match(p.name))]:
            stale.unlink(missing_ok=True)  # hydra rewrites .hydra/ and appends to the log
        _notes.append(f"reusing {candidate}: its earlier run stopped before writing a checkpoint")
    if candidate != run_dir:
        with open_dict(config):
            config.hydra.run.dir = str(candidate)
    return candidate


def check_writable(run_dir: Path) -> None:
    """Refuse a run directory this process cannot write into (read-only), before hydra's logging fails there."""
    try:
        fd, probe = tempfile.mkstemp(prefix=".scoresde-write-test-", dir=run_dir)
        os.close(fd)
        os.unlink(probe)
    except OSError as err:
        raise ValueError(
            f"the run directory {run_dir} is not writable ({err.strerror or err}): make it writable, or continue in "
            "another hydra.run.dir (a training run: resume=<its checkpoint file> there)"
        ) from None


def resume_checkpoint(resume: Any, run_dir: Path) -> tuple[Path, dict[str, Any]]:
    """The checkpoint ``resume`` names and its state; refuses one that would mix runs or overwrite newer files."""
    if resume is True:
        if not CheckpointManager(run_dir / "checkpoints").paths():
            stopped = run_dir.is_dir() and stopped_before_first_checkpoint(run_dir)
            hint = (
                "its run stopped before its first checkpoint: run the same command without resume=true to start it "
                "over there"
                if stopped
                else "run again with hydra.run.dir=<the run directory to continue>, or resume=<path to a checkpoint "
                "or run directory>"
            )
            raise FileNotFoundError(f"resume=true but {run_dir / 'checkpoints'} holds no checkpoint; {hint}")
        return open_checkpoint(run_dir)
    if not isinstance(resume, str):
        raise ValueError(f"resume must be true, false or a checkpoint/run-directory path, got {resume!r}")
    path, state = open_checkpoint(Path(resume).expanduser())
    path = path.absolute()
    inside = path.is_relative_to(run_dir)
    if not inside and run_dir.is_dir() and any(p.name not in HYDRA_FILES for p in run_dir.iterdir()):
        raise ValueError(
            f"resume={resume} continues a checkpoint from another directory, but the run directory {run_dir} "
            "already holds files: choose an empty hydra.run.dir for the continued run"
        )
    if inside:
        newer, _ = CheckpointManager(path.parent).newer_than(checkpoint_step(path) or int(state["step"]))
        if newer:
            raise ValueError(
                f"resume={resume} starts at step {state['step']}, but {path.parent} holds newer readable "
                f"checkpoints ({', '.join(p.name for p in newer)}) that the continued run would overwrite: resume "
                "from the newest (resume=true), or continue in another hydra.run.dir with resume=<this file>"
            )
    return path, state


def _measured(before: Any, after: Any, key: str) -> Any:
    """``after`` with ``sigma_data: auto`` replaced by the value the saved run measured (the training job stores the
    measured number), so that ``model=...`` or ``model.sigma_data=auto`` on resume does not count as a change."""
    if key.endswith("sigma_data") and after == "auto" and isinstance(before, (int, float)):
        return before
    if isinstance(before, dict) and isinstance(after, dict):
        return {k: _measured(before.get(k), v, f"{key}.{k}") for k, v in after.items()}
    return after


def resumed_config(saved: dict[str, Any], current: dict[str, Any], explicit: list[str]) -> tuple[dict, list[str]]:
    """The checkpoint's config with the explicitly overridden settings that may change; notes on what changed.

    Raises:
        ValueError: listing every explicit override that would change a setting outside RESUME_MAY_CHANGE.
    """
    effective, changed, refused = copy.deepcopy(saved), [], []
    for key in explicit:
        before, after = OmegaConf.select(OmegaConf.create(saved), key), OmegaConf.select(OmegaConf.create(current), key)
        before = OmegaConf.to_container(before) if OmegaConf.is_config(before) else before
        after = OmegaConf.to_container(after) if OmegaConf.is_config(after) else after
        after = _measured(before, after, key)
        if before == after:
            continue
        if _within(key, RESUME_MAY_CHANGE):
            *parents, leaf = key.split(".")
            target = effective
            for part in parents:
                target = target.setdefault(part, {})
            target[leaf] = after
            changed.append(f"{key}: {before!r} -> {after!r}")
        else:
            refused += [f"{line} (from the command line)" for line in config_diff({key: before}, {key: after})]
    if refused:
        raise ValueError(
            "these overrides would change the resumed run's configuration:\n  " + "\n  ".join(refused) + "\n"
            f"a resumed run keeps its checkpoint's settings; only {', '.join(RESUME_MAY_CHANGE)} may change "
            "(start a new run, in another hydra.run.dir, to train with other settings)"
        )
    return effective, changed


def prepare_train(config: DictConfig) -> None:
    """Resolve what a training run will do (resume, run directory) and validate it, before anything is written."""
    resume = config.get("resume")
    run_dir = Path(str(OmegaConf.select(config, "hydra.run.dir"))).absolute()
    if resume not in (None, False):
        path, state = resume_checkpoint(resume, run_dir)
        effective, changed = resumed_config(state["config"], plain_config(config), override_keys(config))
        ignored = [line for line in config_diff(effective, plain_config(config)) if not line.startswith("resume:")]
        effective["resume"] = str(path)
        with open_dict(config):
            for key, value in effective.items():
                config[key] = value
        _notes.append(f"resuming from {path} (step {state['step']}) with the checkpoint's configuration")
        _notes.extend(f"changed on resume: {line}" for line in changed)
        if ignored:
            _notes.append(f"{len(ignored)} setting(s) of today's defaults differ and keep the checkpoint's values")
    VALIDATORS["train"](config)
    if _is_main_process() and (resume in (None, False) or not Path(str(config.resume)).is_relative_to(run_dir)):
        claim_run_dir(config)  # a new run, or a branch of another run's checkpoint into this (new) directory


def prepare_other(command: str, config: DictConfig) -> None:
    """Sampling and likelihood runs: validate, refuse an SDE override, then claim the run directory."""
    if "sde" in config:
        raise ValueError(
            "the SDE comes from the checkpoint (the model was trained for it): remove the sde override; to sample "
            "another SDE, train a model for it"
        )
    VALIDATORS[command](config)
    if _is_main_process():
        claim_run_dir(config, command)


class Preflight(Callback):
    """The hydra callback: ``command`` is ``"train"``, ``"sample"`` or ``"likelihood"``."""

    def __init__(self, command: str) -> None:
        self.command = check_choice("command", command, VALIDATORS)

    def on_run_start(self, config: DictConfig, **kwargs: Any) -> None:
        if config.get("list_solvers") is True:  # python -m scoresde.sample list_solvers=true: print, write nothing
            from .solvers import describe_solvers

            print(describe_solvers())
            sys.exit(0)
        with exit_on_error(status=2):
            if self.command == "train":
                prepare_train(config)
            elif self.command == "train_noisy_classifier":  # its SDE is a setting: no checkpoint to take it from
                VALIDATORS[self.command](config)
                if _is_main_process():
                    claim_run_dir(config, self.command)
            else:
                prepare_other(self.command, config)
            run_dir = Path(str(OmegaConf.select(config, "hydra.run.dir"))).absolute()
            if _is_main_process() and run_dir.is_dir():
                check_writable(run_dir)
            if not _is_main_process():  # rank 0 owns the run directory (scoresde.cli._runtime.shared_run_dir);
                with open_dict(config):  # the other ranks' hydra writes nothing there, only a private log
                    config.hydra.run.dir = tempfile.mkdtemp(prefix=f"scoresde-rank{os.environ.get('RANK')}-")
                    config.hydra.output_subdir = None
