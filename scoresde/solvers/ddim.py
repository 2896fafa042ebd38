"""DDIM (Song, Meng & Ermon 2021), deterministic (eta = 0) and stochastic (eta > 0), for every linear SDE.

With alpha_t = m(t), sigma_t = s(t) and Tweedie's x0 = (x + sigma_t^2 s(x, t)) / alpha_t, eps = -sigma_t s(x, t),
one step from t_i to t_{i+1} is their eq. 12 in continuous-time notation:

    x_{i+1} = alpha_{i+1} x0 + sqrt(sigma_{i+1}^2 - c^2) eps + c z,   c = eta sigma_{i+1} sqrt(1 - e^{-2h}),

where h = lambda_{i+1} - lambda_i and sigma_{i+1}^2 (1 - e^{-2h}) is the variance of the forward posterior
q(x_{t_{i+1}} | x_{t_i}, x_0), so eta = 1 is ancestral sampling (DDPM's beta-tilde for VP) and eta = 0 the
first-order exponential integrator DPM-Solver-1 of the probability-flow ODE (Lu et al. 2022a, sec. 4.1).

The noise z of interval i is the solvers' Brownian increment ``ctx.increment(x, i)`` = (W(t_i) - W(t_{i+1})) /
sqrt(t_i - t_{i+1}): an independent N(0, I) draw by default and, with ``sample(..., noise="brownian", seed=...)``,
the normalised increment of each sample's own path W_b in the SDE's time t, the path that Euler-Maruyama,
ancestral sampling and DPM-Solver++(2M) SDE follow. It is normalised, so c is the noise's whole standard deviation
whatever the time variable of the path; with eta = 1 DDIM and ``ancestral`` (beta-tilde) give the same sample for
the same path and grid. Why a path in t and not in lambda or sigma: docs/guides/sampling.md.
"""

from __future__ import annotations

import math

from torch import Tensor

from .._validation import check_number
from .base import StepContext
from .exponential import ExponentialIntegrator


class DDIM(ExponentialIntegrator):
    """DDIM with its eta: one score evaluation per step; deterministic for eta = 0.

    Args:
        eta: Fraction of the posterior standard deviation injected as noise, in [0, 1] (larger values are allowed
            up to the point where sigma_{i+1}^2 - c^2 stays non-negative, i.e. eta <= 1).
        grid: Where the steps fall, a name in ``grids.GRIDS`` (default "quadratic", DDIM's CIFAR-10 choice and the
            best measured for it on the oracle problems).
        rho: Exponent of the "karras" grid.
    """

    default_grid = "quadratic"
    reported = ("eta",)

    def __init__(self, eta: float = 0.0, *, grid: str | None = None, rho: float = 7.0) -> None:
        super().__init__("data", grid=grid, rho=rho)
        self.eta = check_number("eta", eta, 0, 1)
        self.order = 1 if self.eta == 0 else 0.5

    def step(self, x: Tensor, i: int, ctx: StepContext) -> Tensor:
        a, b = self.node(ctx, i), self.node(ctx, i + 1)
        x0 = self.model(ctx, x, a)
        if self.eta == 0:
            return self.first_order(x, x0, a, b)
        eps = (x - a.alpha * x0) / a.sigma
        c = self.eta * b.sigma * math.sqrt(-math.expm1(-2 * (b.lam - a.lam)))
        return b.alpha * x0 + math.sqrt(max(b.sigma**2 - c**2, 0.0)) * eps + c * ctx.increment(x, i)
