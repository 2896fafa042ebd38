"""DPM-Solver++(2M) SDE (Lu et al. 2022b, "DPM-Solver++", sec. 5 and appendix; k-diffusion's ``sample_dpmpp_2m_sde``).

In the scaled state x_tilde = x / m(t), whose noise level is sigma(t) = s(t) / m(t), every linear SDE becomes the
VE process x_tilde = x_0 + sigma z (Karras et al. 2022), and the data prediction (Tweedie's formula) is

    D(x, t) = x_tilde + sigma^2 m(t) s(x, t) = E[x_0 | x_t = x].

The reverse SDE with the noise split eta (eta = 0: the probability-flow ODE, eta = 1: the reverse SDE of the paper)
has, in lambda = -log sigma, a linear part that is integrated exactly; with h = lambda_{i+1} - lambda_i and D held
at a first-order (multistep) extrapolation over the step, one step is

    x_tilde_{i+1} = (sigma_{i+1} / sigma_i) e^{-eta h} x_tilde_i + (1 - e^{-(1 + eta) h}) D_i
                    + c_i (D_i - D_{i-1}) / r_i + sigma_{i+1} sqrt(1 - e^{-2 eta h}) z,

with r_i = h_{i-1} / h_i and c_i = (1 - e^{-(1+eta)h}) / 2 ("midpoint") or
1 - (1 - e^{-(1+eta)h}) / ((1+eta)h) ("heun"); the first step has no correction term (DPM-Solver++(1) SDE, which
for eta = 1 is exactly ancestral sampling with DDPM's beta-tilde variance), nor, by default, the last. One score
evaluation per step; the state is multiplied back by m(t_{i+1}). The noise z of each interval is an independent
draw (or, with ``sample(..., noise="brownian")``, a Brownian increment of the sample's own path).

The method sees an SDE only through its noise levels sigma(t_i) (on the same levels VP, sub-VP and VE give the same
x / m, tested), so its grid is what sets SDEs apart: sub-VP's sigma(eps) is tiny (s(t) ~ B(t) there rather than
sqrt(B(t))), and at 10 NFE or fewer ``grid="logistic"`` suits it better (docs/guides/defaults.md).
"""

from __future__ import annotations

import math

from torch import Tensor

from .._validation import check_bool, check_choice, check_number
from .base import Solver, StepContext

SOLVER_TYPES = ("midpoint", "heun")


class DPMSolverPP2MSDE(Solver):
    """DPM-Solver++(2M) SDE, for every linear SDE through sigma(t) = s(t) / m(t).

    Args:
        eta: Share of the reverse SDE's noise (1: the reverse SDE; 0: DPM-Solver++(2M) on the ODE).
        s_noise: Scale of the injected noise (k-diffusion's s_noise; 1 is exact).
        solver_type: "midpoint" (k-diffusion's default) or "heun", the weight of the multistep correction.
        lower_order_final: Take the last step with first order, as DPM-Solver++ does for few steps.
        grid: Where the steps fall, a name in ``grids.GRIDS`` (default "log_snr"; docs/guides/defaults.md).
        rho: Exponent of the "karras" grid.
    """

    order = 1.0  # strong order of a stochastic step; the deterministic part is second order
    default_steps = 50
    default_grid = "log_snr"
    reported = ("eta", "s_noise", "solver_type", "lower_order_final")

    def __init__(
        self,
        eta: float = 1.0,
        s_noise: float = 1.0,
        solver_type: str = "midpoint",
        lower_order_final: bool = True,
        *,
        grid: str | None = None,
        rho: float = 7.0,
    ) -> None:
        super().__init__(grid=grid, rho=rho)
        self.eta = check_number("eta", eta, 0, math.inf, "[)")
        self.s_noise = check_number("s_noise", s_noise, 0, math.inf, "[)")
        self.solver_type = check_choice("solver_type", solver_type, SOLVER_TYPES)
        self.lower_order_final = check_bool("lower_order_final", lower_order_final)

    def step(self, x: Tensor, i: int, ctx: StepContext) -> Tensor:
        c = ctx.coeffs
        m0, m1, s0, s1 = c.m[i], c.m[i + 1], c.sigma[i], c.sigma[i + 1]
        x_tilde = x / m0
        denoised = x_tilde + (s0**2 * m0) * ctx.score(x, ctx.t(i))
        h = math.log(s0 / s1)
        eta_h = self.eta * h
        decay = -math.expm1(-h - eta_h)  # 1 - e^{-(1 + eta) h}
        out = (s1 / s0 * math.exp(-eta_h)) * x_tilde + decay * denoised
        final = self.lower_order_final and i == len(c.dt) - 1
        if i > 0 and not final:  # ctx.memory holds the previous step's D and h
            r = ctx.memory["h"] / h
            if self.solver_type == "heun":
                weight = 1 - decay / (h + eta_h)
            else:
                weight = 0.5 * decay
            out = out + (weight / r) * (denoised - ctx.memory["denoised"])
        ctx.memory["denoised"], ctx.memory["h"] = denoised, h
        if self.eta > 0 and self.s_noise > 0:
            out = out + (s1 * math.sqrt(-math.expm1(-2 * eta_h)) * self.s_noise) * ctx.increment(x, i)
        return m1 * out
