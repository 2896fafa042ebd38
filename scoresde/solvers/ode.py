"""The probability-flow ODE (Song et al. 2021, eq. 13), integrated with torchdiffeq (Chen et al. 2018).

    dx/dt = f(t) x - 1/2 g(t)^2 s(x, t),   integrated from T down to eps.

Fixed-step methods take exactly one step per grid interval (``steps`` = number of steps, NFE = stages x
steps); adaptive methods integrate each grid interval with error control (``steps`` = number of output
intervals, default 1). The NFE reported is the number of score calls made, rejected steps included.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from torch import Tensor
from torchdiffeq import odeint

from .base import NonFiniteError, Solver, StepContext


@dataclass(frozen=True)
class ODEMethod:
    """A torchdiffeq method: its torchdiffeq name, order and whether it controls its step size."""

    torchdiffeq_name: str
    order: int
    adaptive: bool


ODE_METHODS: dict[str, ODEMethod] = {
    "euler": ODEMethod("euler", 1, False),
    "midpoint": ODEMethod("midpoint", 2, False),
    "heun": ODEMethod("heun2", 2, False),
    "rk4": ODEMethod("rk4", 4, False),
    "bosh3": ODEMethod("bosh3", 3, True),
    "dopri5": ODEMethod("dopri5", 5, True),
    "dopri8": ODEMethod("dopri8", 8, True),
}


class ProbabilityFlowODE(Solver):
    """Deterministic sampler: the probability-flow ODE with a torchdiffeq method.

    Args:
        method: One of ``ODE_METHODS``: fixed-step "euler", "midpoint", "heun", "rk4"; adaptive "bosh3",
            "dopri5" (default; Song et al. use RK45 with rtol = atol = 1e-5), "dopri8".
        rtol: Relative tolerance of adaptive methods.
        atol: Absolute tolerance of adaptive methods.
    """

    def __init__(self, method: str = "dopri5", rtol: float = 1e-5, atol: float = 1e-5) -> None:
        if method not in ODE_METHODS:
            raise ValueError(f"method must be one of {sorted(ODE_METHODS)}, got {method!r}")
        for name, tol in (("rtol", rtol), ("atol", atol)):
            if not (isinstance(tol, (int, float)) and tol > 0):
                raise ValueError(f"{name} must be a positive number, got {tol!r}")
        self.method = method
        self.rtol, self.atol = float(rtol), float(atol)
        spec = ODE_METHODS[method]
        self.order = spec.order
        self.default_steps = 1 if spec.adaptive else 100

    def _drift(self, ctx: StepContext, lo: float, hi: float):
        sde, score, batch = ctx.sde, ctx.score, ctx.batch

        def drift(t: Tensor, x: Tensor) -> Tensor:
            # Only the initial step-size probe of adaptive methods can leave [lo, hi]; keep the score inside it.
            t = t.clamp(lo, hi)
            # t is a 0-d tensor inside the validated grid: use the SDE's unchecked scalar coefficients
            # (the public ones validate the range, which synchronises a GPU at every evaluation).
            return sde._f(t) * x - (0.5 * sde._g2(t)) * score(x, t.expand(batch))

        return drift

    def step(self, x: Tensor, i: int, ctx: StepContext) -> Tensor:
        spec = ODE_METHODS[self.method]
        span = ctx.times[i : i + 2]
        # step_t makes adaptive methods stop exactly at the interval's end instead of stepping past it.
        options = {"rtol": self.rtol, "atol": self.atol, "options": {"step_t": span[1:]}} if spec.adaptive else {}
        drift = self._drift(ctx, ctx.coeffs.t[i + 1], ctx.coeffs.t[i])
        try:
            return odeint(drift, x, span, method=spec.torchdiffeq_name, **options)[-1]
        except AssertionError as err:  # torchdiffeq's checks for non-finite states and step-size underflow
            raise NonFiniteError(
                f"ProbabilityFlowODE({self.method}) failed at step {i} (t={ctx.coeffs.t[i]:.6g} to "
                f"{ctx.coeffs.t[i + 1]:.6g}): {err}"
            ) from err

    def describe(self) -> dict[str, Any]:
        return {"method": self.method, "rtol": self.rtol, "atol": self.atol}
