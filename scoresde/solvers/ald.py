"""Annealed Langevin dynamics of NCSN (Song & Ermon 2019, Algorithm 1), for every linear SDE.

NCSN anneals Langevin MCMC through noise levels sigma_1 > ... > sigma_L of x_tilde = x_0 + sigma z. Under
any linear SDE, x_t / m(t) = x_0 + sigma(t) z with sigma(t) = s(t) / m(t), so level sigma_i is the time
t_i = sde.t_from_sigma(sigma_i) and the score of x_tilde is m(t_i) times the SDE score at x = m(t_i) x_tilde.
Running NCSN's chain on x_tilde is therefore the same as running, in the state x_t the other samplers use,

    x <- x m(t_{i+1}) / m(t_i)                         (move to the next level; x_tilde unchanged)
    x <- x + (a_i / 2) s(x, t_{i+1}) + sqrt(a_i) z     n times, with a_i = m(t_{i+1})^2 eps sigma_{i+1}^2 / sigma_L^2,

which for VE (m = 1) is NCSN's algorithm verbatim. Every SDE is supported; the levels are geometric between
the prior's sigma(T) (where the chain starts) and sigma(eps) = sigma_L. NCSNv2's final denoising step
x + sigma_L^2 s(x, sigma_L) (Song & Ermon 2020, Appendix B) is ``sample(..., denoise=True)``.
"""

from __future__ import annotations

import math

from torch import Tensor

from .._validation import check_int, check_positive
from .base import Solver, StepContext


class AnnealedLangevinDynamics(Solver):
    """NCSN's annealed Langevin dynamics; ``steps`` is the number of noise levels L.

    Args:
        n_steps_each: Langevin steps per level (NCSN: 100).
        epsilon: NCSN's step size epsilon at the last level (step a_i = epsilon sigma_i^2 / sigma_L^2 on x_tilde).
            None (default) takes epsilon = sigma_L^2, i.e. a_i = sigma_i^2, so the default suits any sigma_L
            (NCSN's own 2e-5 at sigma_L = 0.01 leaves the chain unmixed: docs/guides/defaults.md).
        grid: Where the levels fall, a name in ``grids.GRIDS`` (default "log_snr": geometric levels, NCSN's).
        rho: Exponent of the "karras" grid.
    """

    default_steps = 10
    default_grid = "log_snr"  # geometric noise levels
    reported = ("n_steps_each", "epsilon")

    def __init__(
        self, n_steps_each: int = 100, epsilon: float | None = None, *, grid: str | None = None, rho: float = 7.0
    ) -> None:
        super().__init__(grid=grid, rho=rho)
        self.n_steps_each = self.nfe_per_step = check_int("n_steps_each", n_steps_each)
        self.epsilon = check_positive("epsilon", epsilon, or_none=True)

    def step(self, x: Tensor, i: int, ctx: StepContext) -> Tensor:
        c = ctx.coeffs
        sigma_L = c.sigma[-1]
        epsilon = sigma_L**2 if self.epsilon is None else self.epsilon
        a = c.m[i + 1] ** 2 * epsilon * (c.sigma[i + 1] / sigma_L) ** 2
        x = x / c.r[i]
        t = ctx.t(i + 1)
        for _ in range(self.n_steps_each):
            x = x + (a / 2) * ctx.score(x, t) + math.sqrt(a) * ctx.noise(x)
        return x
