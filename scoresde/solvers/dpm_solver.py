"""DPM-Solver-2 and -3 (Lu et al. 2022, Algorithms 1 and 2): exponential integrators in the log-SNR.

With alpha_t = m(t), sigma_t = s(t), lambda_t = log(alpha_t / sigma_t) = -log sigma(t) and the noise prediction
eps(x, t) = -s(t) score(x, t), the probability-flow ODE has the exact solution (their eq. 3.4)

    x_t = (alpha_t / alpha_s) x_s - alpha_t int_{lambda_s}^{lambda_t} e^{-lambda} eps(x_lambda, lambda) dlambda,

whose linear part is integrated exactly and whose integral is Taylor-expanded in lambda. Intermediate times
come from ``sde.t_from_sigma(exp(-lambda))``, so the solvers serve VP, sub-VP and VE alike. The default grid is
uniform in lambda (their "logSNR" schedule). DPM-Solver-1 is DDIM, DPM-Solver-2 costs 2 NFE per step and has
order 2, DPM-Solver-3 costs 3 NFE per step and has order 3.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .base import Solver, StepContext


class _DPMSolver(Solver):
    default_steps = 20
    default_grid = "log_snr"

    @staticmethod
    def _stage(ctx: StepContext, i: int, r: float, h: float) -> tuple[float, float, float]:
        """Time, alpha and sigma at lambda_i + r h (computed on the CPU in float64)."""
        lam = -math.log(ctx.coeffs.sigma[i]) + r * h
        t = ctx.sde.t_from_sigma(torch.tensor(math.exp(-lam), dtype=torch.float64))
        t = min(max(float(t), ctx.coeffs.t[i + 1]), ctx.coeffs.t[i])
        tt = torch.tensor(t, dtype=torch.float64)
        return t, float(ctx.sde._mean_scale(tt)), float(ctx.sde._std(tt))

    @staticmethod
    def _eps(ctx: StepContext, x: Tensor, t: float, s: float) -> Tensor:
        """Noise prediction -s(t) score(x, t) at the scalar time t."""
        time = torch.full((ctx.batch,), t, dtype=x.dtype, device=x.device)
        return -s * ctx.score(x, time)

    @staticmethod
    def _h(ctx: StepContext, i: int) -> float:
        return math.log(ctx.coeffs.sigma[i]) - math.log(ctx.coeffs.sigma[i + 1])


class DPMSolver2(_DPMSolver):
    """DPM-Solver-2 (Lu et al. 2022, Algorithm 1 with r1 = 1/2):

    u = (alpha_s1 / alpha_i) x_i - sigma_s1 (e^{h/2} - 1) eps(x_i, t_i),
    x_{i+1} = (alpha_{i+1} / alpha_i) x_i - sigma_{i+1} (e^h - 1) eps(u, s1).
    """

    order = 2
    nfe_per_step = 2

    def step(self, x: Tensor, i: int, ctx: StepContext) -> Tensor:
        c = ctx.coeffs
        h = self._h(ctx, i)
        t1, a1, s1 = self._stage(ctx, i, 0.5, h)
        eps0 = self._eps(ctx, x, c.t[i], c.s[i])
        u = (a1 / c.m[i]) * x - (s1 * math.expm1(0.5 * h)) * eps0
        eps1 = self._eps(ctx, u, t1, s1)
        return (c.m[i + 1] / c.m[i]) * x - (c.s[i + 1] * math.expm1(h)) * eps1


class DPMSolver3(_DPMSolver):
    """DPM-Solver-3 (Lu et al. 2022, Algorithm 2 with r1 = 1/3, r2 = 2/3)."""

    order = 3
    nfe_per_step = 3

    def step(self, x: Tensor, i: int, ctx: StepContext) -> Tensor:
        c = ctx.coeffs
        r1, r2 = 1 / 3, 2 / 3
        h = self._h(ctx, i)
        t1, a1, s1 = self._stage(ctx, i, r1, h)
        t2, a2, s2 = self._stage(ctx, i, r2, h)
        eps0 = self._eps(ctx, x, c.t[i], c.s[i])
        u1 = (a1 / c.m[i]) * x - (s1 * math.expm1(r1 * h)) * eps0
        d1 = self._eps(ctx, u1, t1, s1) - eps0
        phi2 = math.expm1(r2 * h) / (r2 * h) - 1
        u2 = (a2 / c.m[i]) * x - (s2 * math.expm1(r2 * h)) * eps0 - (s2 * r2 / r1 * phi2) * d1
        d2 = self._eps(ctx, u2, t2, s2) - eps0
        phi = math.expm1(h) / h - 1
        return (c.m[i + 1] / c.m[i]) * x - (c.s[i + 1] * math.expm1(h)) * eps0 - (c.s[i + 1] / r2 * phi) * d2
