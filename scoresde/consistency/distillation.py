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
from .distances import make_distance
from .objectives import Objective, draw_options, labelled, level_times

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
        N: Number of levels (EDM's rho-grid between sigma(eps) and sigma(T)); paper: 18 on CIFAR-10.
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
        N: int = 18,
        mu: float = 0.95,
        distance: str | Any = "l2",
        rho: float = 7.0,
        levels_per_batch: int | None = None,
    ) -> None:
        from ..sampling import make_solver  # scoresde.sampling imports this package

        if teacher is not None and not callable(teacher):
            raise TypeError(f"teacher must be a score function teacher(x, t), got {type(teacher).__name__}")
        check_int("N (levels)", N, 2)
        check_number("mu", mu, 0, 1, "[)")
        self.solver = make_solver(solver)
        if type(self.solver).__name__ not in DETERMINISTIC or getattr(self.solver, "eta", 0) != 0:
            raise ValueError(f"solver must be a deterministic ODE solver ({', '.join(DETERMINISTIC)}), got {solver!r}")
        check_int("levels_per_batch", levels_per_batch, or_none=True)
        self.teacher, self.N, self.mu, self.rho = teacher, N, float(mu), float(rho)
        self.levels_per_batch = levels_per_batch
        self.distance = make_distance(distance)
        self.target: EMA | None = None
        self.teacher_calls = 0
        self._target_state: dict[str, Any] | None = None
        self._coefficients: dict[tuple, GridCoefficients] = {}

    def __repr__(self) -> str:
        return (f"ConsistencyDistillation(solver={self.solver!r}, N={self.N}, mu={self.mu}, "
                f"distance={self.distance!r}, levels_per_batch={self.levels_per_batch})")  # fmt: skip

    def state_dict(self) -> dict[str, Any]:
        return super().state_dict() | {"target": self.target.state_dict() if self.target is not None else None}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        self._target_state = state.get("target")

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
