"""The search behind :func:`~.schedule.optimize_schedule`: which solver variant on which grid, under a budget.

Every candidate is scored by running it: the squared endpoint error of each pilot against the teacher, cached per
pilot, so a candidate measured on a few pilots is extended, never rerun. Three stages spend the budget:

* :func:`halving`: successive halving (Jamieson & Talwalkar 2016, "Non-stochastic Best Arm Identification and
  Hyperparameter Optimization", Alg. 3): every (variant, start grid) pair on a few pilots, the best quarter on four
  times as many, and so on over ceil(log_4 candidates) rounds of about equal spend, the last on every pilot;
* :func:`descend`: compass search (Kolda, Lewis & Torczon 2003, "Optimization by Direct Search") on the interior
  log-SNRs of the best pair's grid: each lambda_k moves a fraction of the gap towards a neighbour, the fraction
  doubling (up to 1/2) after a success and halving after a failure in both directions, until every fraction is
  below ``tol``, the sweeps are done, or the next run would overspend;
* :func:`search` strings them together: halving on every pilot (no candidate is fitted yet), the descent on the
  first half of the pilots from the best candidate, and the check of the descent against its start on the other
  half.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from ..sde import SDE
from .base import CountingScore, NonFiniteError, Solver, integrate

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
        budget: Most evaluations the search may spend in all.
    """

    sde: SDE
    score: CountingScore
    x_T: Tensor
    target: Tensor
    nfe: int
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
        except NonFiniteError:  # a candidate that diverges loses, it does not stop the search
            self.cache[key] = torch.full((len(self.x_T),), math.inf, dtype=torch.float64)
            return math.inf
        return err if math.isfinite(err) else math.inf

    def affordable(self, rows: int, reserve: int = 0) -> bool:
        """Whether one more run on ``rows`` pilots keeps ``reserve`` evaluations within the budget."""
        return self.score.rows + rows * self.nfe + reserve <= self.budget


def first_rows(candidates: int, pilots: int) -> int:
    """Pilots of the first round: each round spends about the same (Jamieson & Talwalkar 2016, Alg. 3), the last
    one all ``pilots``, over ceil(log_rate(candidates)) rounds."""
    rounds = max(1, math.ceil(math.log(max(candidates, 2)) / math.log(HALVING_RATE) - 1e-9))
    return max(1, pilots // HALVING_RATE ** (rounds - 1))


def halving(pilots: Pilots, candidates: dict[tuple, tuple[Solver, Tensor]], fit: Tensor) -> list[tuple[float, tuple]]:
    """Successive halving over ``candidates`` (key -> (solver, times)) on the ``fit`` pilots.

    Returns:
        (mean squared error on all of ``fit``, key) of the survivors, best first.
    """
    rows = fit[: first_rows(len(candidates), len(fit))]
    alive = list(candidates)
    while True:
        scored = sorted((pilots.mean(k, *candidates[k], rows), k) for k in alive)
        if len(rows) == len(fit):
            return scored
        alive = [k for _, k in scored[: max(1, math.ceil(len(scored) / HALVING_RATE))]]
        rows = fit[: min(len(fit), len(rows) * HALVING_RATE)]


def halving_runs(candidates: int, fit: int) -> int:
    """Pilot runs (one candidate on one pilot) that :func:`halving` spends at most on ``fit`` pilots."""
    rows, runs, done = first_rows(candidates, fit), 0, 0
    while True:
        runs += candidates * (rows - done)
        if rows == fit:
            return runs
        candidates, done, rows = max(1, math.ceil(candidates / HALVING_RATE)), rows, min(fit, rows * HALVING_RATE)


class Compass:
    """Compass search on the interior entries of ``lam`` (the ends stay); :meth:`run` stops when a run is not
    affordable, and a later call goes on where it stopped.

    Args:
        objective: lam -> the value to lower.
        lam: The start, shape (N + 1,).
        best: The objective at the start.
        tol: A coordinate whose step fraction falls below it is done.
    """

    def __init__(self, objective: Callable[[Tensor], float], lam: Tensor, best: float, tol: float = 1 / 64) -> None:
        self.objective, self.lam, self.best, self.tol = objective, lam, best, tol
        self.frac = torch.full((len(lam),), 0.5, dtype=torch.float64)
        self.k, self.sweeps = 1, 0

    @property
    def converged(self) -> bool:
        return bool((self.frac[1:-1] < self.tol).all())

    def run(self, sweeps: int, can_afford: Callable[[], bool]) -> None:
        """Go on until ``sweeps`` sweeps are done, every step fraction is below ``tol``, or a run is unaffordable."""
        while self.sweeps < sweeps and not self.converged:
            while self.k < len(self.lam) - 1:
                k = self.k
                if self.frac[k] >= self.tol:
                    for nb in (k - 1, k + 1):
                        if not can_afford():
                            return
                        cand = self.lam.clone()
                        cand[k] = self.lam[k] + self.frac[k] * (self.lam[nb] - self.lam[k])
                        err = self.objective(cand)
                        if err < self.best:
                            self.lam, self.best = cand, err
                            self.frac[k] = min(0.5, 2 * float(self.frac[k]))
                            break
                    else:
                        self.frac[k] /= 2
                self.k += 1
            self.k, self.sweeps = 1, self.sweeps + 1


def descend(
    objective: Callable[[Tensor], float], lam: Tensor, best: float, sweeps: int, can_afford: Callable[[], bool],
    tol: float = 1 / 64,
) -> tuple[Tensor, float]:  # fmt: skip
    """Compass search from ``lam``; returns the best lam and its objective."""
    compass = Compass(objective, lam, best, tol)
    compass.run(sweeps, can_afford)
    return compass.lam, compass.best


@dataclass(frozen=True)
class Found:
    """The search's result: the solver variant and grid, where it came from, and its error on the check half."""

    solver: Solver
    times: Tensor
    start: str
    chosen: str
    check_error: float
    details: dict[str, float]


def search(
    pilots: Pilots,
    candidates: dict[tuple, tuple[Solver, Tensor]],
    half: int,
    sweeps: int,
    to_times: Callable[[Tensor], Tensor],
    to_lam: Callable[[Tensor], Tensor],
) -> Found:
    """Halving on every pilot, a descent on the first ``half`` from the best candidate, the check on the rest.

    Args:
        pilots: The pilot problem.
        candidates: (variant index, start name) -> (solver, times).
        half: Pilots 0..half-1 fit the descent, the others check it against its start.
        sweeps: Most compass-search sweeps.
        to_times, to_lam: The maps between grid times and log-SNRs.
    """
    n = len(pilots.x_T)
    fit, check = torch.arange(half), torch.arange(half, n)
    key = halving(pilots, candidates, torch.arange(n))[0][1]  # no candidate is fitted yet: every pilot chooses
    solver, start = candidates[key]

    def objective(lam: Tensor, rows: Tensor = fit) -> float:
        return pilots.mean(("descent", *lam.tolist()), solver, to_times(lam), rows)

    fit_start = pilots.mean(key, solver, start, fit)
    reserve = 2 * len(check) * pilots.nfe  # the check of the descent and of the default grid
    lam, fit_descent = descend(objective, to_lam(start), fit_start, sweeps,
                               lambda: pilots.affordable(len(fit), reserve))  # fmt: skip
    checked = {"descent": objective(lam, check), "start": pilots.mean(key, solver, start, check)}
    chosen = min(checked, key=checked.get)
    times = to_times(lam) if chosen == "descent" else start
    details = {"fit_start": fit_start, "fit_descent": fit_descent} | {f"check_{k}": v for k, v in checked.items()}
    return Found(solver, times, key[1], chosen, checked[chosen], details)
