"""Multistep consistency sampling (Song, Dhariwal, Chen & Sutskever 2023, Algorithm 1) as a library solver.

Given a consistency function f (x_t -> x_eps) and times T = t_0 > t_1 > ... > t_N = eps, Algorithm 1 draws
x_T from the prior, takes x = f(x_T, T) and then, for n = 1, ..., N - 1, re-noises x to t_n and applies f again:

    x_eps = f(x_{t_n}, t_n),    x_{t_{n+1}} = m(t_{n+1}) [x_eps / m(eps) + sqrt(sigma_{n+1}^2 - sigma_min^2) z].

Written as a solver, step i moves a sample of p_{t_i} to a sample of p_{t_{i+1}} with ONE network call: it maps
the state to eps and re-noises it to t_{i+1} (the kernel of x_{t_{i+1}} given x_eps; at the last step
t_{i+1} = eps, so there is nothing to add). ``steps`` is the number of network calls and ``info.nfe`` counts them.
The grid functions of :mod:`scoresde.solvers.grids` place the intermediate times; ``sigmas`` fixes them by noise
level instead (the paper's 2-step CIFAR-10 sampler re-noises at sigma = 0.821 in EDM's units).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ..sde import SDE
from ..solvers.base import Solver, StepContext
from ..solvers.grids import check_steps_eps


class ConsistencySampler(Solver):
    """Algorithm 1 of Song et al. (2023): one consistency-function call per step, no final denoising.

    The callable that :func:`scoresde.sample` receives as ``score_fn`` must be a consistency function
    ``f(x, t) -> x_eps`` (a :class:`~scoresde.consistency.ConsistencyModel`, or an exact flow map), and ``eps``
    must be the end time it was trained for.

    Args:
        grid: Where the intermediate times fall, a name in ``grids.GRIDS`` (default "karras", rho = 7).
        rho: Exponent of the "karras" grid.
        sigmas: Fixed intermediate noise levels sigma_1 > ... > sigma_{N-1} (in sigma = s / m units) instead of a
            grid; then ``steps`` must be ``len(sigmas) + 1`` (or left out).
    """

    order = None
    default_steps = 1
    nfe_per_step = 1
    default_grid = "karras"
    model_kind = "consistency"
    final_denoise = False

    def __init__(self, *, grid: str | None = None, rho: float = 7.0, sigmas: Sequence[float] | None = None) -> None:
        super().__init__(grid=grid, rho=rho)
        if sigmas is not None:
            sigmas = [float(s) for s in sigmas]
            if any(not (math.isfinite(s) and s > 0) for s in sigmas) or sorted(sigmas, reverse=True) != sigmas:
                raise ValueError(f"sigmas must be decreasing positive noise levels, got {sigmas}")
        self.sigmas = sigmas

    def plan(self, sde: SDE, eps: float, *, steps: int | None = None, nfe: int | None = None) -> Tensor:
        if self.sigmas is None:
            return super().plan(sde, eps, steps=steps, nfe=nfe)
        n = len(self.sigmas) + 1
        if (steps is not None and steps != n) or (nfe is not None and nfe < n):
            raise ValueError(f"sigmas={self.sigmas} fixes steps={n}; got steps={steps!r}, nfe={nfe!r}")
        check_steps_eps(sde, n, eps)
        lo, hi = float(sde.sigma(eps)), float(sde.sigma(sde.T))
        if any(not lo < s < hi for s in self.sigmas):
            raise ValueError(f"sigmas must lie in (sigma(eps), sigma(T)) = ({lo:.4g}, {hi:.4g}), got {self.sigmas}")
        inner = sde.t_from_sigma(torch.tensor(self.sigmas, dtype=torch.float64))
        return torch.cat([torch.tensor([sde.T], dtype=torch.float64), inner, torch.tensor([eps], dtype=torch.float64)])

    def step(self, x: Tensor, i: int, ctx: StepContext) -> Tensor:
        return self.renoise(ctx.score(x, ctx.t(i)), i, ctx)  # the consistency function: one network call

    @staticmethod
    def renoise(x_eps: Tensor, i: int, ctx: StepContext) -> Tensor:
        """x_{t_{i+1}} ~ p(x_{t_{i+1}} | x_eps) = N(m_{i+1} x_eps / m(eps), m_{i+1}^2 (sigma_{i+1}^2 - sigma_min^2) I);
        x_eps itself at the last grid time."""
        c = ctx.coeffs
        var = c.sigma[i + 1] ** 2 - c.sigma[-1] ** 2
        if var <= 0:
            return x_eps
        return c.m[i + 1] * (x_eps / c.m[-1] + math.sqrt(var) * ctx.noise(x_eps))

    def describe(self) -> dict[str, Any]:
        return super().describe() | ({"sigmas": self.sigmas} if self.sigmas is not None else {})
