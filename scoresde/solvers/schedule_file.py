"""An optimised time schedule and its file: which solver, budget and checkpoint it belongs to, and what it cost.

A schedule is saved as JSON (readable, diffable) beside the checkpoint it was optimised for, in
``<run>/schedules/<solver>_nfe<nfe>.json`` (:func:`schedule_path`). :func:`load_schedule` refuses a file made for
another solver, another budget, another end time or another checkpoint (by the SHA-256 of the checkpoint file) with
a ``ValueError`` naming the mismatch; :func:`schedule_for_checkpoint` also refuses other solver options.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .base import Solver

FORMAT = 1


def solver_name(solver: Solver) -> str:
    """The name in ``SOLVERS`` of a solver object's class (its class name if it is not registered)."""
    from . import SOLVERS

    names = [k for k, cls in SOLVERS.items() if type(solver) is cls]
    return names[0] if names else type(solver).__name__


@dataclass(frozen=True)
class Schedule:
    """A time grid optimised for one solver at one budget, with what finding it cost.

    Attributes:
        times: Grid times T = t_0 > ... > t_N = eps, float64 of shape (N + 1,); pass as ``sample(..., times=)``.
        solver: Name of the solver (a key of ``SOLVERS``).
        options: Settings (``Solver.describe()``) of the solver the grid is for: the variant the optimiser chose
            (:meth:`solver_for` builds it from the solver asked for).
        nfe: The score-evaluation budget the grid is for.
        eps: End time of the grid.
        pilots: Number of pilot starts x_T.
        pilot_evaluations: Score evaluations spent, summed over pilot samples (batched calls x pilots).
        pilot_calls: Batched score calls spent.
        pilot_error: Mean squared endpoint error of the solver on this grid against the teacher, on the pilots.
        default_error: The same for the solver's default grid.
        start: The grid the result came from: "dp_data" / "dp_noise" (dynamic programme), "default" or a name in
            ``GRIDS`` (the descent's start where the descent won).
        checkpoint: SHA-256 of the checkpoint file it was optimised for ("" if none).
        requested: Settings of the solver that was asked for ({}: files from before variants, the same as options).
        extra: Details of the search (which finalist won, candidates, budget).
    """

    times: Tensor
    solver: str
    options: dict[str, Any]
    nfe: int
    eps: float
    pilots: int
    pilot_evaluations: int
    pilot_calls: int
    pilot_error: float
    default_error: float
    start: str
    checkpoint: str = ""
    requested: dict[str, Any] = field(default_factory=dict)
    extra: dict[str, Any] = field(default_factory=dict)

    def solver_for(self, solver: str | Solver) -> Solver:
        """The variant of ``solver`` (the solver asked for: an object or its name in ``SOLVERS`` with default
        options) that the grid was optimised for: sample with ``solver=schedule.solver_for(...)``,
        ``times=schedule.times``.

        Raises:
            ValueError: if neither ``solver`` nor one of its variants has the schedule's options.
        """
        if isinstance(solver, str):
            from . import SOLVERS

            if solver not in SOLVERS:
                raise ValueError(f"solver must be one of {sorted(SOLVERS)} or a Solver object, got {solver!r}")
            solver = SOLVERS[solver]()
        if solver.describe() == self.options:
            return solver
        for variant in solver.variants(len(self.times) - 1):
            if variant.describe() == self.options:
                return variant
        raise ValueError(f"the schedule is for {self.solver} with {self.options}, which is not a variant of {solver!r}")


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes (identifies a checkpoint)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def schedule_path(run_dir: str | Path, solver: str, nfe: int) -> Path:
    """Where the schedule of ``solver`` at ``nfe`` lives beside a checkpoint's run directory."""
    return Path(run_dir) / "schedules" / f"{solver}_nfe{nfe}.json"


def save_schedule(schedule: Schedule, path: str | Path) -> Path:
    """Write ``schedule`` as JSON to ``path`` (parents created); returns the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    state = asdict(schedule) | {"times": schedule.times.tolist(), "format": FORMAT}
    path.write_text(json.dumps(state, indent=1, default=str) + "\n")
    return path


def load_schedule(
    path: str | Path,
    *,
    solver: str | None = None,
    nfe: int | None = None,
    eps: float | None = None,
    checkpoint: str | None = None,
) -> Schedule:
    """Read a schedule file and check that it was made for this solver, budget, end time and checkpoint.

    Args:
        path: A file written by :func:`save_schedule`.
        solver, nfe, eps, checkpoint: What the caller will use it with (None: not checked); ``checkpoint`` is the
            SHA-256 of the checkpoint file (:func:`file_digest`).

    Raises:
        FileNotFoundError: if there is no file (the message says how to make one).
        ValueError: if the file is not a schedule, or was made for another solver, budget, eps or checkpoint.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(
            f"no schedule file at {path}; make one with `python -m scoresde.schedule ckpt=RUN solver=... nfe=...`"
        )
    try:
        state = json.loads(path.read_text())
        times = torch.tensor(state.pop("times"), dtype=torch.float64)
        if state.pop("format") != FORMAT:
            raise ValueError(f"unknown schedule file format in {path}")
        schedule = Schedule(times=times, **state)
    except (json.JSONDecodeError, KeyError, TypeError) as err:
        raise ValueError(f"{path} is not a schedule file ({err})") from err
    wanted = {"solver": solver, "nfe": nfe, "checkpoint": checkpoint}
    for key, value in wanted.items():
        if value is not None and getattr(schedule, key) != value:
            raise ValueError(
                f"the schedule in {path} was optimised for {key}={getattr(schedule, key)!r}, not {value!r}; "
                "optimise one for this setting with `python -m scoresde.schedule`"
            )
    if eps is not None and not math.isclose(schedule.eps, eps, rel_tol=1e-12):
        raise ValueError(f"the schedule in {path} ends at eps={schedule.eps}, not {eps}")
    return schedule


def schedule_for_checkpoint(ckpt_path: str | Path, solver: Solver, nfe: int | None, eps: float) -> Schedule:
    """The schedule saved beside a checkpoint file for ``solver`` at ``nfe`` (``grid=optimized``), checked.

    The schedule was optimised for ``solver`` as configured; sample with ``schedule.solver_for(solver)`` (the
    variant it chose) on ``schedule.times``.

    Raises:
        ValueError: without a budget, or for a file made for other settings or another checkpoint.
        FileNotFoundError: if none was saved (the message gives the command that makes it).
    """
    if nfe is None:
        raise ValueError("grid=optimized needs nfe=N: a schedule is optimised for one budget")
    ckpt_path = Path(ckpt_path)
    name = solver_name(solver)
    path = schedule_path(ckpt_path.parent, name, nfe)
    if not path.is_file():
        raise FileNotFoundError(
            f"no optimised schedule for solver={name} nfe={nfe} beside {ckpt_path} (looked for {path}); make it with "
            f"`python -m scoresde.schedule ckpt={ckpt_path} solver={name} nfe={nfe}`"
        )
    schedule = load_schedule(path, solver=name, nfe=nfe, eps=eps, checkpoint=file_digest(ckpt_path))
    asked = schedule.requested or schedule.options
    differ = {k: (v, asked.get(k)) for k, v in solver.describe().items() if asked.get(k) != v}
    if differ:
        said = ", ".join(f"{k}={now!r} (schedule: {then!r})" for k, (now, then) in differ.items())
        raise ValueError(f"the schedule in {path} was optimised for other solver options: {said}")
    return schedule
