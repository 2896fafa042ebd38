"""Consistency losses as training objectives: ``objective(model, x0, generator, y=None) -> scalar loss``.

``model`` is a :class:`~scoresde.consistency.ConsistencyModel` f_theta; every objective compares f_theta at a
noisier point of a probability-flow ODE trajectory with a stop-gradient target at a less noisy point of the SAME
trajectory, and differs only in how it finds that second point:

* :class:`ConsistencyDistillation` (CD, Song et al. 2023, Algorithm 2): one step of a deterministic library solver
  on the teacher's score, N fixed EDM levels, target network theta^- by EMA with rate mu.
* :class:`ConsistencyTraining` (iCT, Song & Dhariwal 2023): the same noise z at both levels (an unbiased estimate of
  the ODE step), no EMA target, pseudo-Huber, N doubling from s0 = 10 to s1 = 1280, log-normal levels.
* :class:`ConsistencyTuning` (ECT, Geng et al. 2024): continuous log-normal t, and r = t (1 - n(t) / q^a) with a gap
  that shrinks stage by stage, starting from a diffusion model's weights; no ODE solver.

The objectives keep their own state (training step, EMA target) in ``state_dict()``, which the trainer stores in
its checkpoints, so a resumed run continues the schedules exactly.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from ..sde import SDE
from ..solvers import grids
from ..solvers.base import CountingScore, GridCoefficients, Solver, StepContext
from ..training.ema import EMA
from .distances import make_distance


def _draw(generator: torch.Generator | None, like: Tensor) -> dict[str, Any]:
    return {"generator": generator, "device": generator.device if generator is not None else like.device}


def _levels(sde: SDE, eps: float, n: int, rho: float) -> Tensor:
    """EDM's n levels sigma^(1/rho) uniform, as increasing times t_1 = eps < ... < t_n = T (float64, (n,))."""
    return grids.karras(sde, n - 1, eps, rho=rho).flip(0)


def _sigma(sde: SDE, t: Tensor) -> Tensor:
    return sde.std(t) / sde.mean_scale(t)


def _labelled(fn, y: Tensor | None):
    return fn if y is None else (lambda x, t: fn(x, t, y))


class _Objective:
    """Shared bookkeeping: the step counter and the state kept in checkpoints."""

    step: int = 0

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])


DETERMINISTIC = ("EDMHeun", "DPMSolver", "DPMSolver2", "DPMSolver3", "UniPC", "ProbabilityFlowODE", "DDIM")
"""The library solvers a teacher step may use (DDIM only with eta = 0)."""


class ConsistencyDistillation(_Objective):
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
        if isinstance(N, bool) or not isinstance(N, int) or N < 2:
            raise ValueError(f"N must be an integer >= 2 (levels), got {N!r}")
        if isinstance(mu, bool) or not isinstance(mu, (int, float)) or not 0 <= mu < 1:
            raise ValueError(f"mu must lie in [0, 1), got {mu!r}")
        self.solver = make_solver(solver)
        if type(self.solver).__name__ not in DETERMINISTIC or getattr(self.solver, "eta", 0) != 0:
            raise ValueError(f"solver must be a deterministic ODE solver ({', '.join(DETERMINISTIC)}), got {solver!r}")
        if levels_per_batch is not None and (
            isinstance(levels_per_batch, bool) or not isinstance(levels_per_batch, int) or levels_per_batch < 1
        ):
            raise ValueError(f"levels_per_batch must be an integer >= 1 or None, got {levels_per_batch!r}")
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
        score = CountingScore(_labelled(self.teacher, y))
        times = torch.tensor([t_from, t_to], dtype=x.dtype, device=x.device)
        out = self.solver.step(x, 0, StepContext(sde, score, self._coefficients[key], times, x.shape[0], None))
        self.teacher_calls += score.calls * x.shape[0]
        return out

    def draw_levels(self, batch: int, generator: torch.Generator | None, like: Tensor) -> Tensor:
        """Level indices n in {0, ..., N - 2} (interval t_n < t_{n+1}) of shape (batch,), uniform over levels."""
        k = batch if self.levels_per_batch is None else min(self.levels_per_batch, batch)
        n = torch.randint(0, self.N - 1, (k,), **_draw(generator, like)).to(like.device)
        return n if k == batch else n.repeat_interleave(-(-batch // k))[:batch]

    def __call__(
        self, model: nn.Module, x0: Tensor, generator: torch.Generator | None = None, y: Tensor | None = None
    ) -> Tensor:
        if self.teacher is None:
            raise ValueError("ConsistencyDistillation needs a teacher score (teacher=...)")
        if isinstance(self.teacher, nn.Module):
            self.teacher.to(x0.device)
        sde, target = model.sde, self._target(model)
        times = _levels(sde, model.eps, self.N, self.rho)  # increasing, (N,)
        n = self.draw_levels(x0.shape[0], generator, x0)
        z = torch.randn(x0.shape, **_draw(generator, x0)).to(x0)
        t_hi, t_lo = times.to(x0)[n + 1], times.to(x0)[n]
        x_hi = sde.perturb(x0, t_hi, z)
        with torch.no_grad():
            x_lo = torch.empty_like(x_hi)
            for level in n.unique().tolist():
                idx = (n == level).nonzero().squeeze(1)
                y_idx = None if y is None else y[idx]
                x_lo[idx] = self.teacher_step(sde, x_hi[idx], float(times[level + 1]), float(times[level]), y_idx)
            goal = _labelled(target, y)(x_lo, t_lo)
        self.step += 1
        return self.distance(_labelled(model, y)(x_hi, t_hi), goal).mean()


def ict_levels(step: int, total_steps: int, s0: int = 10, s1: int = 1280) -> int:
    """iCT's discretisation N(k) = min(s0 2^floor(k / K'), s1) + 1, K' = floor(K / (log2(s1 / s0) + 1))."""
    stage = max(1, math.floor(total_steps / (math.log2(s1 / s0) + 1)))
    return min(s0 * 2 ** (step // stage), s1) + 1


class ConsistencyTraining(_Objective):
    """Improved consistency training (Song & Dhariwal 2023): no teacher, no EMA target.

    At step k with N = :func:`ict_levels` (k) levels sigma_1 < ... < sigma_N (EDM's rho-grid), n is drawn with
    p(n) proportional to erf((log sigma_{n+1} - P_mean) / (sqrt(2) P_std)) - erf((log sigma_n - P_mean) / (sqrt(2)
    P_std)), both points share one z, and the loss is d(f_theta(x0 + sigma_{n+1} z), stopgrad f_theta(x0 +
    sigma_n z)) / (sigma_{n+1} - sigma_n) (times m(t) for the SDE's scaling).

    Args:
        total_steps: K, the run's optimiser steps (sets the doubling schedule; conf: ``${train.steps}``).
        s0, s1: Initial and final level counts (10, 1280).
        p_mean, p_std: The log-normal noise-level distribution (-1.1, 2.0).
        distance: "pseudo_huber" (default, c = 0.00054 sqrt(dim)), "l2" or a callable.
        rho: Exponent of the level grid.
    """

    def __init__(
        self,
        total_steps: int,
        *,
        s0: int = 10,
        s1: int = 1280,
        p_mean: float = -1.1,
        p_std: float = 2.0,
        distance: str | Any = "pseudo_huber",
        rho: float = 7.0,
    ) -> None:
        for name, value in (("total_steps", total_steps), ("s0", s0), ("s1", s1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if s1 < s0:
            raise ValueError(f"s1 must be >= s0, got s0={s0}, s1={s1}")
        if not p_std > 0:
            raise ValueError(f"p_std must be positive, got {p_std!r}")
        self.total_steps, self.s0, self.s1 = total_steps, s0, s1
        self.p_mean, self.p_std, self.rho = float(p_mean), float(p_std), float(rho)
        self.distance = make_distance(distance)

    def __repr__(self) -> str:
        return (f"ConsistencyTraining(total_steps={self.total_steps}, s0={self.s0}, s1={self.s1}, "
                f"p_mean={self.p_mean}, p_std={self.p_std}, distance={self.distance!r})")  # fmt: skip

    def level_probs(self, sigmas: Tensor) -> Tensor:
        """p(n) of the N - 1 intervals of increasing levels sigmas (N,): the log-normal mass of each."""
        cdf = torch.erf((sigmas.log() - self.p_mean) / (math.sqrt(2) * self.p_std))
        mass = (cdf[1:] - cdf[:-1]).clamp_min(0)
        return mass / mass.sum()

    def __call__(
        self, model: nn.Module, x0: Tensor, generator: torch.Generator | None = None, y: Tensor | None = None
    ) -> Tensor:
        sde = model.sde
        times = _levels(sde, model.eps, ict_levels(self.step, self.total_steps, self.s0, self.s1), self.rho)
        sigmas = _sigma(sde, times)
        n = torch.multinomial(self.level_probs(sigmas).to(generator.device if generator else "cpu"),
                              x0.shape[0], replacement=True, generator=generator).to(x0.device)  # fmt: skip
        z = torch.randn(x0.shape, **_draw(generator, x0)).to(x0)
        t_hi, t_lo = times.to(x0)[n + 1], times.to(x0)[n]
        weight = (1 / (sigmas[1:] - sigmas[:-1])).to(x0)[n]
        fn = _labelled(model, y)
        with torch.no_grad():
            goal = fn(sde.perturb(x0, t_lo, z), t_lo)
        self.step += 1
        return (weight * self.distance(fn(sde.perturb(x0, t_hi, z), t_hi), goal)).mean()


class ConsistencyTuning(_Objective):
    """Easy consistency tuning (Geng et al. 2024) from a diffusion model: continuous t, shrinking t - r.

    sigma_t ~ log-normal(P_mean, P_std) clipped to [sigma(eps), sigma(T)]; sigma_r = sigma_t (1 - n(sigma_t) / q^a)
    with n(s) = 1 + k sigmoid(-b s) and a = 1 + floor(stages * step / total_steps) (r below sigma(eps): r = eps,
    where f is the identity, i.e. a denoising loss); one z for both points, weight 1 / (sigma_t - sigma_r), target
    stopgrad f_theta(x_r, r). No teacher and no ODE solver: the student starts from the diffusion model's weights.

    Args:
        total_steps: The run's optimiser steps (conf: ``${train.steps}``).
        stages: Number of halvings of the gap over the run (a = 1, ..., stages).
        q: Shrink factor per stage (2).
        k, b: The shape of n(s) (8, 1).
        p_mean, p_std: The log-normal noise-level distribution (-1.1, 2.0).
        distance: "pseudo_huber" (default), "l2" or a callable.
    """

    def __init__(
        self,
        total_steps: int,
        *,
        stages: int = 8,
        q: float = 2.0,
        k: float = 8.0,
        b: float = 1.0,
        p_mean: float = -1.1,
        p_std: float = 2.0,
        distance: str | Any = "pseudo_huber",
    ) -> None:
        for name, value in (("total_steps", total_steps), ("stages", stages)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
        if not q > 1:
            raise ValueError(f"q must be > 1, got {q!r}")
        if not p_std > 0:
            raise ValueError(f"p_std must be positive, got {p_std!r}")
        self.total_steps, self.stages, self.q, self.k, self.b = total_steps, stages, float(q), float(k), float(b)
        self.p_mean, self.p_std = float(p_mean), float(p_std)
        self.distance = make_distance(distance)

    def __repr__(self) -> str:
        return (f"ConsistencyTuning(total_steps={self.total_steps}, stages={self.stages}, q={self.q}, k={self.k}, "
                f"b={self.b}, distance={self.distance!r})")  # fmt: skip

    def gap_ratio(self, sigma: Tensor) -> Tensor:
        """(sigma_t - sigma_r) / sigma_t = n(sigma_t) / q^a at the current step, shape of sigma."""
        a = 1 + min(self.stages - 1, self.stages * self.step // self.total_steps)
        return (1 + self.k * torch.sigmoid(-self.b * sigma)) / self.q**a

    def __call__(
        self, model: nn.Module, x0: Tensor, generator: torch.Generator | None = None, y: Tensor | None = None
    ) -> Tensor:
        sde = model.sde
        lo, hi = float(_sigma(sde, torch.tensor(model.eps))), float(_sigma(sde, torch.tensor(sde.T)))
        normal = torch.randn(x0.shape[0], **_draw(generator, x0)).to(x0.device, torch.float64)
        sigma_t = (self.p_mean + self.p_std * normal).exp().clamp(lo, hi)
        sigma_r = sigma_t * (1 - self.gap_ratio(sigma_t))
        t = sde.t_from_sigma(sigma_t).clamp(model.eps, sde.T)
        r = torch.where(sigma_r <= lo, torch.full_like(sigma_r, model.eps), sde.t_from_sigma(sigma_r.clamp_min(lo)))
        r = torch.minimum(r.clamp(model.eps, sde.T), t)
        weight = 1 / (_sigma(sde, t) - _sigma(sde, r)).clamp_min(1e-12)
        z = torch.randn(x0.shape, **_draw(generator, x0)).to(x0)
        t, r, weight = t.to(x0), r.to(x0), weight.to(x0)
        fn = _labelled(model, y)
        with torch.no_grad():
            goal = fn(sde.perturb(x0, r, z), r)
        self.step += 1
        return (weight * self.distance(fn(sde.perturb(x0, t, z), t), goal)).mean()
