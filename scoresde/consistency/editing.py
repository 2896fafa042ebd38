"""Zero-shot editing with a consistency model (Song, Dhariwal, Chen & Sutskever 2023, Algorithm 4).

For an observation of x through an orthogonal channel basis A and a mask (inpainting: A = I; colorization: the
gray channel of an orthogonal colour basis), Algorithm 4 starts from the observation noised to t_1 = T, and at each
time maps to eps with the consistency function, puts the observed part back, and re-noises to the next time:

    x = f(x_{t_n}, t_n);   x = A^-1[(A x) on the missing part + (A y) on the observed part];   x ~ p(x_{t_{n+1}} | x).

It is :class:`~scoresde.consistency.ConsistencySampler`'s step with the observed part replaced between the network
call and the re-noising; ``scoresde.inpaint(..., method="consistency")`` and ``scoresde.colorize(...,
method="consistency")`` run it with a :class:`~scoresde.consistency.ConsistencyModel` as the score_fn argument.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..conditioning.methods import ConditionalMethod
from ..conditioning.observation import BoundObservation
from ..sde import SDE
from ..solvers.base import CountingScore, Solver, StepContext, integrate
from .sampler import ConsistencySampler


class _EditStep(Solver):
    """One step of Algorithm 4: f, replace the observed part by m(eps) y, re-noise to t_{i+1}."""

    def __init__(self, obs: BoundObservation, y_eps: Tensor) -> None:
        self.obs, self.y_eps = obs, y_eps

    def step(self, x: Tensor, i: int, ctx: StepContext) -> Tensor:
        x_eps = self.obs.merge(ctx.score(x, ctx.t(i)), self.y_eps)
        return ConsistencySampler.renoise(x_eps, i, ctx)


class ConsistencyEditing(ConditionalMethod):
    """Algorithm 4 of Song et al. (2023): one consistency-function call per step, the observation replaced after each.

    Args:
        grid: Where the times fall, a name in ``grids.GRIDS`` (default "karras").
        rho: Exponent of the "karras" grid.
        sigmas: Fixed intermediate noise levels instead of a grid (as :class:`ConsistencySampler`).
    """

    default_steps = 4
    model_kind = "consistency"

    def __init__(self, grid: str | None = None, rho: float = 7.0, sigmas=None) -> None:
        self.sampler = ConsistencySampler(grid=grid, rho=rho, sigmas=sigmas)

    def grid(self, sde: SDE, steps: int, eps: float) -> Tensor:
        return self.sampler.plan(sde, eps, steps=steps)

    def cost(self, sde: SDE, steps: int, eps: float, denoise: bool) -> int:
        return steps  # no final denoising: the last step ends on f(x, eps)

    def run(self, sde, score: CountingScore, obs: BoundObservation, times: Tensor, *, denoise, generator, progress):
        y, t0, t_eps = obs.y, float(times[0]), float(times[-1])
        m0, s0, m_eps = float(sde.mean_scale(t0)), float(sde.std(t0)), float(sde.mean_scale(t_eps))
        z = torch.randn(y.shape, generator=generator, dtype=y.dtype, device=y.device)
        x = m0 * obs.merge(torch.zeros_like(z), y) + s0 * z  # x ~ N(m y, s^2 I) at t_1 = T, 0 where unobserved
        x, _ = integrate(_EditStep(obs, m_eps * y), sde, score, x, times, generator=generator, progress=progress)
        return x, {"denoise": False}

    def describe(self) -> dict[str, Any]:
        return {"solver": "ConsistencySampler"} | self.sampler.describe()
