"""Consistency losses as training objectives: ``objective(model, x0, generator, y=None) -> scalar loss``.

``model`` is a :class:`~scoresde.consistency.ConsistencyModel` f_theta; every objective compares f_theta at a
noisier point of a probability-flow ODE trajectory with a stop-gradient target at a less noisy point of the SAME
trajectory, and differs only in how it finds that second point:

* :class:`~scoresde.consistency.distillation.ConsistencyDistillation` (CD, Song et al. 2023, Algorithm 2): one step
  of a deterministic library solver on the teacher's score, N fixed EDM levels, target network theta^- by EMA.
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

from .._validation import check_int, check_number, check_positive
from ..sde import SDE
from ..solvers import grids
from ..training.objectives import labelled
from .distances import make_distance


def draw_options(generator: torch.Generator | None, like: Tensor) -> dict[str, Any]:
    """Keyword arguments of torch.randn / randint drawing from ``generator`` on its device (else like's)."""
    return {"generator": generator, "device": generator.device if generator is not None else like.device}


def level_times(sde: SDE, eps: float, n: int, rho: float) -> Tensor:
    """EDM's n levels sigma^(1/rho) uniform, as increasing times t_1 = eps < ... < t_n = T (float64, (n,))."""
    return grids.karras(sde, n - 1, eps, rho=rho).flip(0)


def _sigma(sde: SDE, t: Tensor) -> Tensor:
    """sigma(t) = s(t) / m(t) for a tensor of times, without the range check of SDE.sigma."""
    return sde.std(t) / sde.mean_scale(t)


class Objective:
    """Shared bookkeeping: the step counter and the state kept in checkpoints."""

    step: int = 0

    def state_dict(self) -> dict[str, Any]:
        return {"step": self.step}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.step = int(state["step"])


def ict_levels(step: int, total_steps: int, s0: int = 10, s1: int = 1280) -> int:
    """iCT's discretisation N(k) = min(s0 2^floor(k / K'), s1) + 1, K' = floor(K / (log2(s1 / s0) + 1))."""
    stage = max(1, math.floor(total_steps / (math.log2(s1 / s0) + 1)))
    return min(s0 * 2 ** (step // stage), s1) + 1


class ConsistencyTraining(Objective):
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
            check_int(name, value)
        if s1 < s0:
            raise ValueError(f"s1 must be >= s0, got s0={s0}, s1={s1}")
        self.total_steps, self.s0, self.s1 = total_steps, s0, s1
        self.p_mean, self.p_std, self.rho = float(p_mean), check_positive("p_std", p_std), float(rho)
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
        times = level_times(sde, model.eps, ict_levels(self.step, self.total_steps, self.s0, self.s1), self.rho)
        sigmas = _sigma(sde, times)
        n = torch.multinomial(self.level_probs(sigmas).to(generator.device if generator else "cpu"),
                              x0.shape[0], replacement=True, generator=generator).to(x0.device)  # fmt: skip
        z = torch.randn(x0.shape, **draw_options(generator, x0)).to(x0)
        t_hi, t_lo = times.to(x0)[n + 1], times.to(x0)[n]
        weight = (1 / (sigmas[1:] - sigmas[:-1])).to(x0)[n]
        fn = labelled(model, y)
        with torch.no_grad():
            goal = fn(sde.perturb(x0, t_lo, z), t_lo)
        self.step += 1
        return (weight * self.distance(fn(sde.perturb(x0, t_hi, z), t_hi), goal)).mean()


class ConsistencyTuning(Objective):
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
            check_int(name, value)
        self.total_steps, self.stages, self.k, self.b = total_steps, stages, float(k), float(b)
        self.q = check_number("q", q, 1, math.inf, "()")
        self.p_mean, self.p_std = float(p_mean), check_positive("p_std", p_std)
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
        normal = torch.randn(x0.shape[0], **draw_options(generator, x0)).to(x0.device, torch.float64)
        sigma_t = (self.p_mean + self.p_std * normal).exp().clamp(lo, hi)
        sigma_r = sigma_t * (1 - self.gap_ratio(sigma_t))
        t = sde.t_from_sigma(sigma_t).clamp(model.eps, sde.T)
        r = torch.where(sigma_r <= lo, torch.full_like(sigma_r, model.eps), sde.t_from_sigma(sigma_r.clamp_min(lo)))
        r = torch.minimum(r.clamp(model.eps, sde.T), t)
        weight = 1 / (_sigma(sde, t) - _sigma(sde, r)).clamp_min(1e-12)
        z = torch.randn(x0.shape, **draw_options(generator, x0)).to(x0)
        t, r, weight = t.to(x0), r.to(x0), weight.to(x0)
        fn = labelled(model, y)
        with torch.no_grad():
            goal = fn(sde.perturb(x0, r, z), r)
        self.step += 1
        return (weight * self.distance(fn(sde.perturb(x0, t, z), t), goal)).mean()
