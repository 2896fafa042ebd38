"""The probability-flow ODE (Song et al. 2021, eq. 13):

    dx/dt = f(t) x - 1/2 g(t)^2 s(x, t),   integrated from T down to eps.

Fixed-step methods take exactly one explicit Runge-Kutta step per grid interval (``steps`` = number of steps,
NFE = stages x steps). They are written here from their Butcher tableaus, the same schemes as torchdiffeq's
methods of the same name (tests compare the two to round-off), because a torchdiffeq call per step costs more
than the update itself. Adaptive methods integrate each grid interval with torchdiffeq's error control
(Chen et al. 2018; ``steps`` = number of output intervals, default 1). The NFE reported is the number of
score calls made, rejected steps and the initial step-size probe included.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torchdiffeq import odeint

from .._utils import append_dims
from .._validation import check_choice
from ..sde import SDE
from .adaptive_ode import dopri5_per_sample
from .base import NonFiniteError, Solver, StepContext


@dataclass(frozen=True)
class ButcherTableau:
    """Explicit Runge-Kutta: stage j evaluates at t + c_j h, x + h sum_l a_jl k_l; then x' = x + h sum_j b_j k_j."""

    a: tuple[tuple[float, ...], ...]
    b: tuple[float, ...]
    c: tuple[float, ...]


@dataclass(frozen=True)
class ODEMethod:
    """A method name: its order, and either a tableau (fixed step) or a torchdiffeq adaptive method name."""

    order: int
    tableau: ButcherTableau | None = None
    torchdiffeq_name: str | None = None

    @property
    def adaptive(self) -> bool:
        return self.tableau is None


def rk_step(
    vf: Callable[[int, float, tuple[Tensor, ...]], tuple[Tensor, ...]],
    y: tuple[Tensor, ...],
    t0: float,
    h: float,
    tab: ButcherTableau,
) -> tuple[Tensor, ...]:
    """One explicit Runge-Kutta step of dy/dt = F(t, y) from t0 to t0 + h (h of either sign), y a tuple of tensors.

    The one Runge-Kutta step of the package: the probability-flow sampler (y = (x,)) and the likelihood's
    augmented ODE (y = (x, log-determinant)) both take it.

    Args:
        vf: ``vf(j, t, y_j)``: the vector field F at stage j's time t = t0 + c_j h and state y_j.
        y: The state at t0.
        t0: Start time of the step.
        h: Signed step length.
        tab: The method's Butcher tableau.
    """
    ks: list[tuple[Tensor, ...]] = []
    for j, row in enumerate(tab.a):
        yj = y
        for a, k in zip(row, ks, strict=True):
            if a:
                yj = tuple(u + (h * a) * du for u, du in zip(yj, k, strict=True))
        ks.append(vf(j, t0 + tab.c[j] * h, yj))
    for b, k in zip(tab.b, ks, strict=True):
        if b:
            y = tuple(u + (h * b) * du for u, du in zip(y, k, strict=True))
    return y


ODE_METHODS: dict[str, ODEMethod] = {
    "euler": ODEMethod(1, ButcherTableau(a=((),), b=(1.0,), c=(0.0,))),
    "midpoint": ODEMethod(2, ButcherTableau(a=((), (0.5,)), b=(0.0, 1.0), c=(0.0, 0.5))),
    "heun": ODEMethod(2, ButcherTableau(a=((), (1.0,)), b=(0.5, 0.5), c=(0.0, 1.0))),
    # Kutta's 3/8 rule, torchdiffeq's "rk4"
    "rk4": ODEMethod(
        4,
        ButcherTableau(
            a=((), (1 / 3,), (-1 / 3, 1.0), (1.0, -1.0, 1.0)),
            b=(1 / 8, 3 / 8, 3 / 8, 1 / 8),
            c=(0.0, 1 / 3, 2 / 3, 1.0),
        ),
    ),
    "bosh3": ODEMethod(3, torchdiffeq_name="bosh3"),
    "dopri5": ODEMethod(5, torchdiffeq_name="dopri5"),
    "dopri8": ODEMethod(8, torchdiffeq_name="dopri8"),
}


class ProbabilityFlowODE(Solver):
    """Deterministic sampler: the probability-flow ODE.

    Args:
        method: One of ``ODE_METHODS``: fixed-step "euler", "midpoint", "heun", "rk4" (3/8 rule); adaptive
            (torchdiffeq) "bosh3", "dopri5" (default; Song et al. use RK45 with rtol = atol = 1e-5), "dopri8".
        rtol: Relative tolerance of adaptive methods.
        atol: Absolute tolerance of adaptive methods.
        per_sample: With "dopri5", give every sample its own step size and time
            (:func:`.adaptive_ode.dopri5_per_sample`): the batch costs the sum of its samples' evaluations instead
            of the batch size times those of the hardest sample, and a sample's result does not depend on its
            batch. NFE per sample is reported in ``SampleInfo.extras``; ``info.nfe`` counts the batched calls.
        grid: Where the steps (output intervals) fall, a name in ``grids.GRIDS`` (default "uniform").
        rho: Exponent of the "karras" grid.

    An ``nfe`` budget buys nfe // stages steps of a fixed-step method; an adaptive method keeps its grid and
    stops with :class:`~.base.BudgetExceededError` if its error control needs more than the budget.
    """

    def __init__(
        self,
        method: str = "dopri5",
        rtol: float = 1e-5,
        atol: float = 1e-5,
        per_sample: bool = False,
        *,
        grid: str | None = None,
        rho: float = 7.0,
    ) -> None:
        super().__init__(grid=grid, rho=rho)
        check_choice("method", method, ODE_METHODS)
        if per_sample not in (True, False) or (per_sample and method != "dopri5"):
            raise ValueError(f"per_sample=True needs method='dopri5', got per_sample={per_sample!r}, method={method!r}")
        self.per_sample = bool(per_sample)
        for name, tol in (("rtol", rtol), ("atol", atol)):
            if isinstance(tol, bool) or not (isinstance(tol, (int, float)) and tol > 0):
                raise ValueError(f"{name} must be a positive number, got {tol!r}")
        self.method = method
        self.rtol, self.atol = float(rtol), float(atol)
        self.spec = ODE_METHODS[method]
        self.order = self.spec.order
        self.default_steps = 1 if self.spec.adaptive else 100
        self.nfe_per_step = 1 if self.spec.adaptive else len(self.spec.tableau.b)

    def plan(self, sde: SDE, eps: float, *, steps: int | None = None, nfe: int | None = None) -> Tensor:
        if self.spec.adaptive and nfe is not None:
            super().plan(sde, eps, steps=steps, nfe=nfe)  # validates the pair
            return self.grid(sde, self.default_steps, eps)
        return super().plan(sde, eps, steps=steps, nfe=nfe)

    def step(self, x: Tensor, i: int, ctx: StepContext) -> Tensor:
        if self.spec.adaptive:
            return self._adaptive_step(x, i, ctx)
        return self._rk_step(x, i, ctx, self.spec.tableau)

    def _rk_step(self, x: Tensor, i: int, ctx: StepContext, tab: ButcherTableau) -> Tensor:
        t0, h = ctx.coeffs.t[i], ctx.coeffs.t[i + 1] - ctx.coeffs.t[i]
        # Stage times lie inside the validated grid interval: the SDE's unchecked scalar coefficients, on the CPU.
        co = ctx.sde.coefficients(torch.tensor([t0 + c * h for c in tab.c], dtype=torch.float64))
        f, half_g2 = co.f.tolist(), (0.5 * co.g2).tolist()

        def vf(j: int, t: float, y: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
            xj = y[0]
            tt = torch.full((ctx.batch,), t, dtype=xj.dtype, device=xj.device)
            return (f[j] * xj - half_g2[j] * ctx.score(xj, tt),)

        return rk_step(vf, (x,), t0, h, tab)[0]

    def _per_sample_step(self, x: Tensor, i: int, ctx: StepContext) -> Tensor:
        sde, score = ctx.sde, ctx.score
        lo, hi = ctx.coeffs.t[i + 1], ctx.coeffs.t[i]

        def drift(t: Tensor, y: tuple[Tensor, ...], idx: Tensor) -> tuple[Tensor, ...]:
            t = t.clamp(lo, hi)
            co = sde.coefficients(t)
            f, half_g2 = co.f.to(x.dtype), (0.5 * co.g2).to(x.dtype)
            x_ = y[0]
            return (append_dims(f, x_.ndim) * x_ - append_dims(half_g2, x_.ndim) * score(x_, t.to(x.dtype)),)

        res = dopri5_per_sample(drift, (x,), hi, lo, rtol=self.rtol, atol=self.atol)
        nfe = ctx.memory.get("nfe", 0) + res.nfe_per_sample
        ctx.memory["nfe"] = nfe
        ctx.stats.update(nfe_per_sample=nfe.tolist(), nfe_mean=float(nfe.double().mean()), nfe_max=int(nfe.max()),
                         sample_evaluations=int(nfe.sum()))  # fmt: skip
        if not bool(torch.isfinite(res.y[0]).all()):
            raise NonFiniteError(f"ProbabilityFlowODE(dopri5, per_sample) gave non-finite values at step {i}")
        return res.y[0]

    def _adaptive_step(self, x: Tensor, i: int, ctx: StepContext) -> Tensor:
        if self.per_sample:
            return self._per_sample_step(x, i, ctx)
        sde, score, batch = ctx.sde, ctx.score, ctx.batch
        lo, hi = ctx.coeffs.t[i + 1], ctx.coeffs.t[i]

        def drift(t: Tensor, y: Tensor) -> Tensor:
            # Only the initial step-size probe can leave [lo, hi]; keep the score's time inside it. Inside the
            # validated grid the SDE's unchecked coefficients avoid a GPU synchronisation per evaluation.
            t = t.clamp(lo, hi)
            co = sde.coefficients(t)
            return co.f * y - (0.5 * co.g2) * score(y, t.expand(batch))

        span = ctx.times[i : i + 2]
        # step_t makes the solver stop exactly at the interval's end instead of stepping past it and interpolating.
        options = {"step_t": span[1:]}
        try:
            out = odeint(drift, x, span, method=self.spec.torchdiffeq_name, rtol=self.rtol, atol=self.atol,
                         options=options)  # fmt: skip
        except AssertionError as err:  # torchdiffeq's checks for non-finite states and step-size underflow
            raise NonFiniteError(
                f"ProbabilityFlowODE({self.method}) failed at step {i} (from t={hi:.6g} to t={lo:.6g}): {err}"
            ) from err
        return out[-1]

    def describe(self) -> dict[str, Any]:
        return (
            super().describe()
            | {"method": self.method, "rtol": self.rtol, "atol": self.atol}
            | ({"per_sample": True} if self.per_sample else {})
        )
