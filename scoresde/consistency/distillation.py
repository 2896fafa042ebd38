"""Consistency distillation (Song, Dhariwal, Chen & Sutskever 2023, Algorithm 2) from any teacher score.

The teacher's probability-flow ODE step is one ``step`` of a deterministic library solver on the interval
[t_{n+1}, t_n] of EDM's level grid (Heun as in the paper, DPM-Solver-2, UniPC, DDIM, ...); the target network is an
EMA of the student. See :mod:`scoresde.consistency.objectives` for the objectives without a teacher.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor, nn

from .._validation import check_int, check_number
from ..sde import SDE
from ..solvers.base import CountingScore, GridCoefficients, Solver, StepContext
from ..training.ema import EMA
from ..training.objectives import labelled
from .distances import make_distance
from .objectives import Objective, draw_options, level_times

DETERMINISTIC = ("EDMHeun", "DPMSolver", "DPMSolver2", "DPMSolver3", "UniPC", "ProbabilityFlowODE", "DDIM")
"""The library solvers a teacher step may use (DDIM only with eta = 0)."""


class ConsistencyDistillation(Objective):
    """Consistency distillation (Song et al. 2023, Algorithm 2 and eq. 7) from any teacher score.

    For n ~ U{1, ..., N - 1}: x_{t_{n+1}} = m (x0 + sigma_{n+1} z), x_hat_{t_n} = one ``solver`` step of the
    teacher's probability-flow ODE from t_{n+1} to t_n, and the loss is lambda d(f_theta(x_{t_{n+1}}, t_{n+1}),
    f_theta^-(x_hat_{t_n}, t_n)) with lambda = 1 and theta^- <- mu theta^- + (1 - mu) theta after every step.

    Args:
        teacher: The teacher's score ``teacher(x, t)`` (a ScoreModel, or an oracle's exact score).
        solver: The teacher's ODE step: a deterministic solver name ("edm_heun" as the paper, "dpm_solver2") or
            object.
        N: Number of levels (EDM's rho-grid between sigma(eps) and sigma(T)); paper: 18 on CIFAR-10. "auto"
            (default): the teacher's own accuracy decides (:meth:`choose_levels`): from the paper's 18, N doubles
            until the teacher's composed ODE map over the N levels (the map the student learns) differs from the
            map over 2N levels by at most ``map_rtol`` times the data's scale, measured once from pilot starts.
        map_rtol: The tolerance of ``N="auto"``, relative to the student's sigma_data (or the data's std).
        mu: EMA rate of the target network (paper: 0.95 on CIFAR-10); 0 makes theta^- = stopgrad(theta).
        distance: "l2" (default), "pseudo_huber" or a callable ``d(a, b) -> (B,)``.
        rho: Exponent of the level grid.
        levels_per_batch: None (the paper): every example draws its own level, so a step takes one teacher step
            per distinct level in the batch (up to N - 1). An integer k draws k levels per batch, each shared by
            a contiguous share of the examples: the same uniform level distribution over steps, with k teacher
            steps per training step (the teacher's cost is per call where batches are small, e.g. an MLP).

    Attributes:
        teacher_calls: Teacher evaluations so far (per example: the solver's nfe per step, 2 for Heun).
    """

    def __init__(
        self,
        teacher=None,
        *,
        solver: str | Solver = "edm_heun",
        N: int | str = "auto",
        mu: float = 0.95,
        distance: str | Any = "l2",
        rho: float = 7.0,
        levels_per_batch: int | None = None,
        map_rtol: float = 0.01,
    ) -> None:
        from ..sampling import make_solver  # scoresde.sampling imports this package

        if teacher is not None and not callable(teacher):
            raise TypeError(f"teacher must be a score function teacher(x, t), got {type(teacher).__name__}")
        if N != "auto":
            check_int("N (levels; or 'auto')", N, 2)
        check_number("map_rtol", map_rtol, 0, 1, "()")
        check_number("mu", mu, 0, 1, "[)")
        self.solver = make_solver(solver)
        if type(self.solver).__name__ not in DETERMINISTIC or getattr(self.solver, "eta", 0) != 0:
            raise ValueError(f"solver must be a deterministic ODE solver ({', '.join(DETERMINISTIC)}), got {solver!r}")
        check_int("levels_per_batch", levels_per_batch, or_none=True)
        self.teacher, self.N, self.mu, self.rho = teacher, N, float(mu), float(rho)
        self.map_rtol = float(map_rtol)
        self.map_errors: dict[int, float] = {}
        self.levels_per_batch = levels_per_batch
        self.distance = make_distance(distance)
        self.target: EMA | None = None
        self.teacher_calls = 0
        self._target_state: dict[str, Any] | None = None
        self._coefficients: dict[tuple, GridCoefficients] = {}

    def __repr__(self) -> str:
        return (f"ConsistencyDistillation(solver={self.solver!r}, N={self.N!r}, mu={self.mu}, "
                f"distance={self.distance!r}, levels_per_batch={self.levels_per_batch})")  # fmt: skip

    def state_dict(self) -> dict[str, Any]:
        target = self.target.state_dict() if self.target is not None else None
        return super().state_dict() | {"target": target, "N": self.N, "map_errors": dict(self.map_errors)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._target_state = state.get("target")
        if self.N == "auto" and isinstance(state.get("N"), int):  # the levels chosen before the interruption
            self.N, self.map_errors = state["N"], dict(state.get("map_errors", {}))

    def teacher_map(self, sde: SDE, x: Tensor, times: Tensor) -> Tensor:
        """The teacher's composed ODE map from x at times[-1] down the increasing level times to times[0]."""
        for level in range(len(times) - 1, 0, -1):
            x = self.teacher_step(sde, x, float(times[level]), float(times[level - 1]))
        return x

    @torch.no_grad()
    def choose_levels(self, model: nn.Module, x0: Tensor, *, pilots: int = 256, max_levels: int = 1152) -> int:
        """N for ``N="auto"``: the smallest N in 18, 36, 72, ... whose composed teacher map differs from the 2N map
        by an RMS of at most ``map_rtol`` times the data's scale (the student's sigma_data, else x0's std).

        The consistency function the student learns is the teacher's ODE step composed over the N levels
        (Song et al. 2023, Theorem 1: its error is the solver's local error summed over the levels), so N must be
        fine enough for the teacher at hand; the paper's 18 suits EDM's CIFAR-10 teacher and is where the search
        starts. The pilot starts are fixed draws from the prior (seed 0); their cost is counted in
        ``teacher_calls``. ``map_errors`` keeps each N's RMS change, relative to the scale.
        """
        sde = model.sde
        scale = float(getattr(model, "sigma_data", None) or x0.float().std())
        gen = torch.Generator().manual_seed(0)
        start = sde.prior_sampling((pilots, *x0.shape[1:]), generator=gen, dtype=torch.float64).to(x0)
        n, previous = 18, self.teacher_map(sde, start, level_times(sde, model.eps, 18, self.rho))
        while 2 * n <= max_levels:
            finer = self.teacher_map(sde, start, level_times(sde, model.eps, 2 * n, self.rho))
            self.map_errors[n] = float((finer - previous).pow(2).mean().sqrt()) / scale
            if self.map_errors[n] <= self.map_rtol:
                return n
            n, previous = 2 * n, finer
        return n

    def _target(self, model: nn.Module) -> nn.Module:
        """theta^-: created from theta at the first call, then moved by one EMA update per call (= per step)."""
        if self.target is None:
            self.target = EMA(model, self.mu, warmup=False)
            if self._target_state is not None:
                self.target.load_state_dict(self._target_state)
                self._target_state = None
        elif self.step > 0:
            self.target.update(model)
        return self.target.model

    def teacher_step(self, sde: SDE, x: Tensor, t_from: float, t_to: float, y: Tensor | None = None) -> Tensor:
        """x_hat at t_to: one ``solver`` step of the teacher's probability-flow ODE from t_from, shape of x.

        The step's grid coefficients are computed once per (SDE, interval) and reused: a distillation step takes
        one teacher step per level present in the batch.
        """
        key = (repr(sde), t_from, t_to)
        if key not in self._coefficients:
            self._coefficients[key] = GridCoefficients.from_grid(sde, torch.tensor([t_from, t_to], dtype=torch.float64))
        score = CountingScore(labelled(self.teacher, y))
        times = torch.tensor([t_from, t_to], dtype=x.dtype, device=x.device)
        out = self.solver.step(x, 0, StepContext(sde, score, self._coefficients[key], times, x.shape[0], None))
        self.teacher_calls += score.rows
        return out

    def drawlevel_times(self, batch: int, generator: torch.Generator | None, like: Tensor) -> Tensor:
        """Level indices n in {0, ..., N - 2} (interval t_n < t_{n+1}) of shape (batch,), uniform over levels."""
        k = batch if self.levels_per_batch is None else min(self.levels_per_batch, batch)
        n = torch.randint(0, self.N - 1, (k,), **draw_options(generator, like)).to(like.device)
        return n if k == batch else n.repeat_interleave(-(-batch // k))[:batch]

    def __call__(
        self, model: nn.Module, x0: Tensor, generator: torch.Generator | None = None, y: Tensor | None = None
    ) -> Tensor:
        if self.teacher is None:
            raise ValueError("ConsistencyDistillation needs a teacher score (teacher=...)")
        if isinstance(self.teacher, nn.Module):
            self.teacher.to(x0.device)
        if self.N == "auto":
            self.N = self.choose_levels(model, x0)
        sde, target = model.sde, self._target(model)
        times = level_times(sde, model.eps, self.N, self.rho)  # increasing, (N,)
        n = self.drawlevel_times(x0.shape[0], generator, x0)
        z = torch.randn(x0.shape, **draw_options(generator, x0)).to(x0)
        t_hi, t_lo = times.to(x0)[n + 1], times.to(x0)[n]
        x_hi = sde.perturb(x0, t_hi, z)
        with torch.no_grad():
            x_lo = torch.empty_like(x_hi)
            for level in n.unique().tolist():
                idx = (n == level).nonzero().squeeze(1)
                y_idx = None if y is None else y[idx]
                x_lo[idx] = self.teacher_step(sde, x_hi[idx], float(times[level + 1]), float(times[level]), y_idx)
            goal = labelled(target, y)(x_lo, t_lo)
        self.step += 1
        return self.distance(labelled(model, y)(x_hi, t_hi), goal).mean()
