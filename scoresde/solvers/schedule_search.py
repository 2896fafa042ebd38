"""The search behind :func:`~.schedule.optimize_schedule`: which solver variant on which grid, under a budget.

Every candidate is scored by running it: the squared endpoint error of each pilot against the teacher, cached per
pilot, so a candidate measured on a few pilots is extended, never rerun. Three stages spend the budget:

* :func:`halving`: successive halving (Jamieson & Talwalkar 2016, "Non-stochastic Best Arm Identification and
  Hyperparameter Optimization"): every (variant, start grid) pair on a quarter of the fit pilots, the best quarter
  of them on all of them;
* :func:`descend`: compass search (Kolda, Lewis & Torczon 2003, "Optimization by Direct Search") on the interior
  log-SNRs of the best pair's grid: each lambda_k moves a fraction of the gap towards a neighbour, the fraction
  doubling (up to 1/2) after a success and halving after a failure in both directions, until every fraction is
  below ``tol``, the sweeps are done, or the next run would overspend;
* the check in :func:`~.schedule.optimize_schedule`: the finalists on the other half of the pilots.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..sde import SDE
from .base import CountingScore, Solver, integrate

HALVING_RATE = 4
"""Successive halving keeps 1 / HALVING_RATE of the candidates and gives them HALVING_RATE times the pilots."""


@dataclass
class Pilots:
    """The pilot problem: starts, the teacher's endpoints, and the score evaluations spent so far.

    Attributes:
        sde, score: The process and the counted score (``score.calls`` batched calls).
        x_T: Pilot starts, shape (P, *event_shape).
        target: The teacher's endpoints, same shape.
        nfe: Score evaluations of one run of a candidate per pilot.
        used: Score evaluations spent, summed over pilots (a one-element list shared with the counter).
        budget: Most evaluations the search may spend in all.
    """

    sde: SDE
    score: CountingScore
    x_T: Tensor
    target: Tensor
    nfe: int
    used: list[int]
    budget: int
    cache: dict[tuple, Tensor] = field(default_factory=dict)

    def errors(self, key: tuple, solver: Solver, times: Tensor, rows: Tensor) -> Tensor:
        """Squared endpoint error per pilot of ``rows`` (float64, (len(rows),)); pilots already run are cached."""
        have = self.cache.get(key, torch.full((len(self.x_T),), math.nan, dtype=torch.float64))
        todo = rows[have[rows].isnan()]
        if len(todo):
            out, _ = integrate(solver, self.sde, self.score, self.x_T[todo], times, nfe_budget=self.nfe)
            have[todo] = (out - self.target[todo]).flatten(1).square().sum(1).double().cpu()
        self.cache[key] = have
        return have[rows]

    def mean(self, key: tuple, solver: Solver, times: Tensor, rows: Tensor) -> float:
        """Mean squared endpoint error over ``rows`` (inf if the run failed or is not finite)."""
        try:
            err = float(self.errors(key, solver, times, rows).mean())
        except (ValueError, RuntimeError):  # a candidate that diverges (NonFiniteError) loses, it does not stop us
            self.cache[key] = torch.full((len(self.x_T),), math.inf, dtype=torch.float64)
            return math.inf
        return err if math.isfinite(err) else math.inf

    def affordable(self, rows: int, reserve: int = 0) -> bool:
        """Whether one more run on ``rows`` pilots keeps ``reserve`` evaluations within the budget."""
        return self.used[0] + rows * self.nfe + reserve <= self.budget


def halving(pilots: Pilots, candidates: dict[tuple, tuple[Solver, Tensor]], fit: Tensor) -> list[tuple[float, tuple]]:
    """Successive halving over ``candidates`` (key -> (solver, times)) on the ``fit`` pilots.

    Returns:
        (mean squared error on all of ``fit``, key) of the survivors, best first.
    """
    rows = fit[: max(1, len(fit) // HALVING_RATE)]
    alive = list(candidates)
    while True:
        scored = sorted((pilots.mean(k, *candidates[k], rows), k) for k in alive)
        if len(rows) == len(fit):
            return scored
        alive = [k for _, k in scored[: max(1, math.ceil(len(scored) / HALVING_RATE))]]
        rows = fit[: min(len(fit), len(rows) * HALVING_RATE)]


def halving_runs(candidates: int, fit: int) -> int:
    """Pilot runs (one candidate on one pilot) that :func:`halving` spends at most on ``fit`` pilots."""
    rows, runs, done = max(1, fit // HALVING_RATE), 0, 0
    while True:
        runs += candidates * (rows - done)
        if rows == fit:
            return runs
        candidates, done, rows = max(1, math.ceil(candidates / HALVING_RATE)), rows, min(fit, rows * HALVING_RATE)


def descend(
    objective: Callable[[Tensor], float], lam: Tensor, best: float, sweeps: int, can_afford: Callable[[], bool],
    tol: float = 1 / 64,
) -> tuple[Tensor, float]:  # fmt: skip
    """Compass search on the interior entries of ``lam`` (the ends stay); returns the best lam and its objective."""
    frac = torch.full((len(lam),), 0.5, dtype=torch.float64)
    for _ in range(sweeps):
        for k in range(1, len(lam) - 1):
            if frac[k] < tol:
                continue
            for nb in (k - 1, k + 1):
                if not can_afford():
                    return lam, best
                cand = lam.clone()
                cand[k] = lam[k] + frac[k] * (lam[nb] - lam[k])
                err = objective(cand)
                if err < best:
                    lam, best = cand, err
                    frac[k] = min(0.5, 2 * float(frac[k]))
                    break
            else:
                frac[k] /= 2
        if bool((frac[1:-1] < tol).all()):
            break
    return lam, best
