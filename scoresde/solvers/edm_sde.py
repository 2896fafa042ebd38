"""EDM's stochastic sampler (Karras et al. 2022, Algorithm 2) for every linear SDE.

In the scaled state x_tilde = x / m(t) with noise level sigma(t) = s(t) / m(t) (see :mod:`.edm`), each step first
raises the noise level ("churn") and then takes a deterministic Heun step of the probability-flow ODE down to the
next grid level:

    gamma_i = min(S_churn / N, sqrt(2) - 1) if S_min <= sigma_i <= S_max else 0
    sigma_hat = sigma_i (1 + gamma_i),   x_hat = x_tilde_i + sqrt(sigma_hat^2 - sigma_i^2) S_noise z
    d = (x_hat - D(x_hat; sigma_hat)) / sigma_hat,   x' = x_hat + (sigma_{i+1} - sigma_hat) d
    x_tilde_{i+1} = x_hat + (sigma_{i+1} - sigma_hat) (d + d(x'; sigma_{i+1})) / 2

with D(x_tilde; sigma) = x_tilde + sigma^2 m s(m x_tilde, t) and d(x_tilde; sigma) = -sigma m s(m x_tilde, t) at
t = sde.t_from_sigma(sigma). sigma_hat is capped at sigma(T): the score is not defined beyond the SDE's end time.
Two score evaluations per step (EDM's last step to sigma = 0 is Euler; here the grid ends at sigma(eps) > 0, and
``sample(..., denoise=True)`` is that last Euler step).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._validation import check_number
from .base import Solver, StepContext


class EDMStochastic(Solver):
    """Karras et al. (2022) Algorithm 2: churn to sigma_hat, then a Heun step; 2 NFE per step.

    Args:
        S_churn: Total churn; gamma_i = min(S_churn / N, sqrt(2) - 1) on the levels in [S_min, S_max]. The default
            40 is EDM's ImageNet-64 value (at N <= 96 steps it is the cap; why: docs/guides/defaults.md).
        S_min: Lowest noise level sigma that gets churn.
        S_max: Highest noise level sigma that gets churn.
        S_noise: Scale of the churn noise (EDM: 1.003 on ImageNet; 1 is exact).
        grid: Where the steps fall, a name in ``grids.GRIDS``. Default "logistic" (steps concentrated near the
            data's scale), not EDM's "karras" (docs/guides/defaults.md).
        rho: Exponent of the "karras" grid.
    """

    order = 1.0  # with churn; 2 without (S_churn = 0 is Algorithm 1, :class:`EDMHeun`)
    default_steps = 25
    nfe_per_step = 2
    default_grid = "logistic"
    reported = ("S_churn", "S_min", "S_max", "S_noise")

    def __init__(
        self,
        S_churn: float = 40.0,
        S_min: float = 0.05,
        S_max: float = 50.0,
        S_noise: float = 1.0,
        *,
        grid: str | None = None,
        rho: float = 7.0,
    ) -> None:
        super().__init__(grid=grid, rho=rho)
        churn = {"S_churn": S_churn, "S_min": S_min, "S_max": S_max, "S_noise": S_noise}
        self.S_churn, self.S_min, self.S_max, self.S_noise = (check_number(k, v, 0, math.inf) for k, v in churn.items())
        if self.S_min > self.S_max:
            raise ValueError(f"S_min ({S_min}) must not exceed S_max ({S_max})")

    def _churned(self, i: int, ctx: StepContext) -> tuple[float, float, float]:
        """sigma_hat, its time and m(t_hat) for step i (float64 on the CPU)."""
        c = ctx.coeffs
        sigma = c.sigma[i]
        n = len(c.dt)
        gamma = min(self.S_churn / n, math.sqrt(2) - 1) if self.S_min <= sigma <= self.S_max else 0.0
        sigma_hat = min(sigma * (1 + gamma), c.sigma[0])
        if sigma_hat <= sigma:
            return sigma, c.t[i], c.m[i]
        t_hat = float(ctx.sde.t_from_sigma(torch.tensor(sigma_hat, dtype=torch.float64)))
        t_hat = min(max(t_hat, c.t[i]), c.t[0])
        return sigma_hat, t_hat, float(ctx.sde.mean_scale(t_hat))

    def step(self, x: Tensor, i: int, ctx: StepContext) -> Tensor:
        c = ctx.coeffs
        s0, s1, m1 = c.sigma[i], c.sigma[i + 1], c.m[i + 1]
        x_tilde = x / c.m[i]
        sigma_hat, t_hat, m_hat = self._churned(i, ctx)
        if sigma_hat > s0:
            x_tilde = x_tilde + (math.sqrt(sigma_hat**2 - s0**2) * self.S_noise) * ctx.noise(x)
        time_hat = torch.full((ctx.batch,), t_hat, dtype=x.dtype, device=x.device)
        d0 = (-sigma_hat * m_hat) * ctx.score(m_hat * x_tilde, time_hat)
        x_euler = x_tilde + (s1 - sigma_hat) * d0
        d1 = (-s1 * m1) * ctx.score(m1 * x_euler, ctx.t(i + 1))
        return m1 * (x_tilde + (0.5 * (s1 - sigma_hat)) * (d0 + d1))
