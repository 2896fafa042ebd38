"""EDM's deterministic second-order sampler (Karras et al. 2022, Algorithm 1) for every linear SDE.

EDM writes the probability-flow ODE of the scaled state x_tilde = x / m(t), whose noise level is
sigma = s(t) / m(t), as dx_tilde / dsigma = (x_tilde - D(x_tilde; sigma)) / sigma = -sigma grad log p(x_tilde; sigma)
(their eq. 3 with s = 1). The score of x_tilde is m(t) times the SDE score at x = m x_tilde, so with the grid
in sigma mapped to times by ``sde.t_from_sigma`` each Heun step is, with d(x, i) = -sigma_i m_i s(x, t_i):

    x_tilde' = x_tilde_i + (sigma_{i+1} - sigma_i) d(x_i, i)                          (Euler)
    x_tilde_{i+1} = x_tilde_i + (sigma_{i+1} - sigma_i) (d(x_i, i) + d(x', i+1)) / 2   (trapezoidal correction)

and x = m x_tilde. EDM's last step, Euler down to sigma = 0, lands on D(x; sigma_N) = Tweedie's estimate,
which is ``sample(..., denoise=True)``. Default grid: EDM's rho = 7 schedule (eq. 5) between sigma(T) and sigma(eps).
"""

from __future__ import annotations

from torch import Tensor

from .base import Solver, StepContext


class EDMHeun(Solver):
    """Karras et al. (2022) Algorithm 1 (deterministic Heun, 2 NFE per step) on the sigma grid of the SDE.

    Args:
        rho: Exponent of the sigma grid, sigma_i^(1/rho) uniform (EDM: 7).
        grid: Where the steps fall, a name in ``grids.GRIDS`` (default "karras").
    """

    order = 2
    default_steps = 18  # EDM's CIFAR-10 setting: 18 steps, 35 NFE with their final Euler step
    nfe_per_step = 2
    default_grid = "karras"

    def __init__(self, rho: float = 7.0, *, grid: str | None = None) -> None:
        super().__init__(grid=grid, rho=rho)

    def step(self, x: Tensor, i: int, ctx: StepContext) -> Tensor:
        c = ctx.coeffs
        m0, m1, s0, s1 = c.m[i], c.m[i + 1], c.sigma[i], c.sigma[i + 1]
        x_tilde = x / m0
        d0 = (-s0 * m0) * ctx.score(x, ctx.t(i))
        x_euler = m1 * (x_tilde + (s1 - s0) * d0)
        d1 = (-s1 * m1) * ctx.score(x_euler, ctx.t(i + 1))
        return m1 * (x_tilde + (0.5 * (s1 - s0)) * (d0 + d1))
