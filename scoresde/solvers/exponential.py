"""What the exponential integrators (DDIM, DPM-Solver, DPM-Solver++, UniPC) share: the log-SNR time and the
two model parameterisations.

Every linear SDE has the marginal x_t = alpha_t x_0 + sigma_t z with alpha_t = m(t), sigma_t = s(t) (the DPM-Solver
papers' notation; in :class:`GridCoefficients` these are ``m`` and ``s``, and ``sigma`` there is their ratio).
With lambda_t = log(alpha_t / sigma_t) = -log sigma(t) the probability-flow ODE has the exact solution, from s to
t with h = lambda_t - lambda_s > 0 (Lu et al. 2022a, eq. 3.4; Lu et al. 2022b, eq. 9):

    noise prediction eps = -sigma_t score:
        x_t = (alpha_t / alpha_s) x_s - alpha_t int_{lambda_s}^{lambda_t} e^{-lambda} eps dlambda,
    data prediction x0 = (x + sigma_t^2 score) / alpha_t:
        x_t = (sigma_t / sigma_s) x_s + sigma_t int_{lambda_s}^{lambda_t} e^{lambda} x0 dlambda.

Both read x_t = L x_s - C (g1(hh) M_s + g2(hh) D1 + g3(hh) D2 + ...) for a model output M with its scaled divided
differences D_k, where (L, C, hh) = (sigma_t / sigma_s, alpha_t, -h) for data and (alpha_t / alpha_s, sigma_t, h)
for noise prediction, and g1(hh) = e^hh - 1, g_{k+1}(hh) = g_k(hh) / hh - 1 / k! are hh times the phi-functions
phi_k(hh) of exponential integrators (Hochbruck & Ostermann 2010). Intermediate times come from
``sde.t_from_sigma(exp(-lambda))``, so the methods serve VP, sub-VP and VE alike and never ask which SDE they hold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from .._validation import check_choice
from .base import Solver, StepContext

PREDICTIONS = ("data", "noise")


def phi(k: int, hh: float) -> float:
    """g_k(z) = z phi_k(z) for the phi-functions phi_1(z) = (e^z - 1) / z, phi_{k+1}(z) = (phi_k(z) - 1 / k!) / z."""
    g = math.expm1(hh)
    for j in range(1, k):
        g = g / hh - 1 / math.factorial(j)
    return g


@dataclass(frozen=True)
class Node:
    """A time t with alpha_t = m(t), sigma_t = s(t) and the log-SNR lambda_t = log(alpha_t / sigma_t)."""

    t: float
    alpha: float
    sigma: float
    lam: float


@dataclass(frozen=True)
class Transfer:
    """The exact linear part of a step from ``a`` to ``b``: x_b = L x_a - C (g1(hh) M_a + ...)."""

    L: float
    C: float
    hh: float


class ExponentialIntegrator(Solver):
    """Base of the solvers of the probability-flow ODE in lambda with a data- or noise-prediction model.

    Args:
        prediction: "data" (x0, DPM-Solver++ and UniPC's default) or "noise" (eps, DPM-Solver).
        grid: Where the steps fall, a name in ``grids.GRIDS`` (default "log_snr", uniform in lambda).
        rho: Exponent of the "karras" grid.
    """

    order = 1
    default_steps = 20
    default_grid = "log_snr"
    reported = ("prediction",)

    def __init__(self, prediction: str = "data", *, grid: str | None = None, rho: float = 7.0) -> None:
        super().__init__(grid=grid, rho=rho)
        self.prediction = check_choice("prediction", prediction, PREDICTIONS)

    @staticmethod
    def node(ctx: StepContext, i: int) -> Node:
        """Grid time t_i as a :class:`Node`."""
        c = ctx.coeffs
        return Node(c.t[i], c.m[i], c.s[i], -math.log(c.sigma[i]))

    @staticmethod
    def stage(ctx: StepContext, i: int, lam: float) -> Node:
        """The time inside interval i (between t_{i+1} and t_i) where the log-SNR is ``lam``."""
        c = ctx.coeffs
        t = float(ctx.sde.t_from_sigma(torch.tensor(math.exp(-lam), dtype=torch.float64)))
        tt = torch.tensor(min(max(t, c.t[i + 1]), c.t[i]), dtype=torch.float64)
        # Inside the validated grid: the SDE's unchecked scalar coefficients, on the CPU.
        co = ctx.sde.coefficients(tt)
        return Node(float(tt), float(co.m), float(co.s), lam)

    def model(self, ctx: StepContext, x: Tensor, a: Node) -> Tensor:
        """The data prediction x0 = (x + sigma_a^2 s(x, t_a)) / alpha_a or the noise prediction -sigma_a s(x, t_a)."""
        score = ctx.score(x, torch.full((ctx.batch,), a.t, dtype=x.dtype, device=x.device))
        if self.prediction == "data":
            return (x + a.sigma**2 * score) / a.alpha
        return -a.sigma * score

    def transfer(self, a: Node, b: Node) -> Transfer:
        """(L, C, hh) of the step from ``a`` to ``b`` for this solver's prediction."""
        h = b.lam - a.lam
        if self.prediction == "data":
            return Transfer(b.sigma / a.sigma, b.alpha, -h)
        return Transfer(b.alpha / a.alpha, b.sigma, h)

    def first_order(self, x: Tensor, model: Tensor, a: Node, b: Node) -> Tensor:
        """DDIM / DPM-Solver-1 (Lu et al. 2022a, eq. 3.7; 2022b, eq. 11): x_b = L x_a - C (e^hh - 1) M_a."""
        tr = self.transfer(a, b)
        return tr.L * x - (tr.C * math.expm1(tr.hh)) * model
