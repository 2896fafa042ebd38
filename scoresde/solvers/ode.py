"""The probability-flow ODE (Song et al. 2021, eq. 13):

    dx/dt = f(t) x - 1/2 g(t)^2 s(x, t),   integrated from T down to eps (sampling) or from eps up to T (encoding).

What is integrated and how are kept apart (cf. diffrax). A *term* is the right-hand side F(t, y) on a tuple state
y: :class:`FlowTerm` is the drift above on y = (x,); the likelihood's :class:`~scoresde.likelihood.AugmentedFlow`
adds the divergence on y = (x, log-determinant). :class:`ProbabilityFlowODE` integrates a term over every grid
interval, in either direction, with one of three kinds of method:

* fixed-step Runge-Kutta: exactly one explicit step per interval (``steps`` = number of steps, NFE = stages x
  steps), written here from the Butcher tableaus of torchdiffeq's methods of the same name (tests compare the two
  to round-off), because a torchdiffeq call per step costs more than the update itself;
* adaptive (torchdiffeq's error control, Chen et al. 2018): one step-size sequence for the batch over each interval
  (``steps`` = output intervals, default 1);
* ``per_sample`` Dormand-Prince (:func:`.adaptive_ode.dopri5_per_sample`): a step size and time per sample.

The NFE reported is the number of score calls made, rejected steps and the initial step-size probe included.
Non-finite values stop the run with :func:`~.base.nonfinite_error`: the loop's check after every interval, or the
adaptive method's own stop inside one (then naming the time of the attempt that met them).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from torchdiffeq import odeint

from .._utils import append_dims
from .._validation import check_choice, check_positive
from ..sde import SDE, ScoreFn
from .adaptive_ode import dopri5_per_sample
from .base import Solver, StepContext, nonfinite_error

State = tuple[Tensor, ...]
Term = Callable[..., State]
"""``term(t, y, idx=None) -> dy/dt`` on a tuple state y of tensors with a common batch: t a float (a fixed step's
stage), a 0-d tensor (a batch's shared adaptive step) or a (b,) float64 tensor (per-sample steps), inside the grid
interval being solved; ``idx`` (b,) the batch rows y holds when a per-sample solver passes a subset (None: all)."""


class FlowTerm:
    """The probability-flow drift f~(x, t) = f(t) x - 1/2 g(t)^2 s(x, t) (eq. 13) as a :data:`Term` on (x,).

    Args:
        sde: The forward SDE.
        score: The (counted) score s(x, t).
    """

    def __init__(self, sde: SDE, score: ScoreFn) -> None:
        self.sde, self.score = sde, score

    def drift(self, t: float | Tensor, x: Tensor) -> Tensor:
        """f~(x, t) for x of shape (B, *event_shape) and t as in :data:`Term`; one score call."""
        if isinstance(t, float):  # a fixed step's stage: the coefficients in float64 on the host, no device sync
            co = self.sde.coefficients(torch.tensor(t, dtype=torch.float64))
            f, half_g2 = float(co.f), 0.5 * float(co.g2)
            time = torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device)
        else:
            co = self.sde.coefficients(t)
            f, half_g2 = append_dims(co.f, x.ndim).to(x.dtype), append_dims(0.5 * co.g2, x.ndim).to(x.dtype)
            time = t.to(x.dtype).expand(x.shape[0])
        return f * x - half_g2 * self.score(x, time)

    def __call__(self, t: float | Tensor, y: State, idx: Tensor | None = None) -> State:
        return (self.drift(t, y[0]),)


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


def rk_step(vf: Callable[[float, State], State], y: State, t0: float, h: float, tab: ButcherTableau) -> State:
    """One explicit Runge-Kutta step of dy/dt = F(t, y) from t0 to t0 + h (h of either sign), y a tuple of tensors.

    Args:
        vf: ``vf(t, y_j)``: the vector field F at stage j's time t = t0 + c_j h and state y_j.
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
        ks.append(vf(t0 + tab.c[j] * h, yj))
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
    "adaptive_heun": ODEMethod(2, torchdiffeq_name="adaptive_heun"),
    "fehlberg2": ODEMethod(2, torchdiffeq_name="fehlberg2"),
    "bosh3": ODEMethod(3, torchdiffeq_name="bosh3"),
    "dopri5": ODEMethod(5, torchdiffeq_name="dopri5"),
    "dopri8": ODEMethod(8, torchdiffeq_name="dopri8"),
}


class _Watched:
    """A term evaluated at times clamped to [t_a, t_b] (only an initial step-size probe leaves the interval) that
    records each evaluation's time and per-row output sums on the device, without synchronising, so that an
    adaptive method that stops on non-finite values can name the first evaluation that gave them."""

    def __init__(self, term: Term, t_a: float, t_b: float) -> None:
        self.term, (self.lo, self.hi), self.log = term, sorted((t_a, t_b)), []
        self.sign = 1.0 if t_b >= t_a else -1.0

    def __call__(self, t: Tensor, y: State, idx: Tensor | None = None) -> State:
        t = t.clamp(self.lo, self.hi)
        out = self.term(t, y, idx)
        self.log.append((t, sum(o.reshape(o.shape[0], -1).sum(1) for o in out)))
        return out

    def first_nonfinite(self) -> float | None:
        """The time of the first evaluation (in the direction of the solve) with a NaN or infinite output row."""
        for t, sums in self.log:
            bad = ~torch.isfinite(sums)
            if bool(bad.any()):
                return float((self.sign * t.expand_as(sums)[bad]).min() * self.sign)
        return None


class ProbabilityFlowODE(Solver):
    """Deterministic sampler: the probability-flow ODE, and the integrator of every ODE term on the grid.

    Args:
        method: One of ``ODE_METHODS``: fixed-step "euler", "midpoint", "heun", "rk4" (3/8 rule); adaptive
            (torchdiffeq) "dopri5" (default; Song et al. use RK45 with rtol = atol = 1e-5), "bosh3", "dopri8",
            "fehlberg2", "adaptive_heun".
        rtol: Relative tolerance of adaptive methods.
        atol: Absolute tolerance of adaptive methods.
        per_sample: With "dopri5", give every sample its own step size and time
            (:func:`.adaptive_ode.dopri5_per_sample`): the batch costs the sum of its samples' evaluations instead
            of the batch size times those of the hardest sample, and a sample's result does not depend on its
            batch. NFE per sample is reported in ``SampleInfo.extras``; ``info.nfe`` counts the batched calls.
        grid: Where the steps (output intervals) fall, a name in ``grids.GRIDS`` (default "uniform").
        rho: Exponent of the "karras" grid.

    An ``nfe`` budget buys nfe // stages steps of a fixed-step method; an adaptive method keeps its grid and
    stops with :class:`~.base.BudgetExceededError` if its error control needs more than the budget. The state
    may be a tensor or a tuple of tensors (an augmented state); :meth:`make_term` says what is integrated,
    :attr:`options` are torchdiffeq's options of the shared adaptive step.
    """

    options: dict[str, Any] = {}

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
        self.method, self.rtol, self.atol = method, check_positive("rtol", rtol), check_positive("atol", atol)
        self.spec = ODE_METHODS[method]
        self.order = self.spec.order
        self.adaptive = self.spec.adaptive
        self.default_steps = 1 if self.adaptive else 100
        self.nfe_per_step = 1 if self.adaptive else len(self.spec.tableau.b)

    def make_term(self, ctx: StepContext) -> Term:
        """What a run integrates: the probability-flow drift of the run's SDE and counted score."""
        return FlowTerm(ctx.sde, ctx.score)

    def step(self, x: Tensor | State, i: int, ctx: StepContext) -> Tensor | State:
        if "term" not in ctx.memory:
            ctx.memory["term"] = self.make_term(ctx)
        term, y = ctx.memory["term"], ((x,) if isinstance(x, Tensor) else x)
        t0, t1 = ctx.coeffs.t[i], ctx.coeffs.t[i + 1]
        if not self.adaptive:
            y = rk_step(term, y, t0, t1 - t0, self.spec.tableau)
        elif self.per_sample:
            y = self._per_sample_step(term, y, i, ctx)
        else:
            y = self._adaptive_step(term, y, i, ctx)
        return y[0] if isinstance(x, Tensor) else y

    def _per_sample_step(self, term: Term, y: State, i: int, ctx: StepContext) -> State:
        watched = _Watched(term, *ctx.coeffs.t[i : i + 2])
        res = dopri5_per_sample(watched, y, ctx.coeffs.t[i], ctx.coeffs.t[i + 1], rtol=self.rtol, atol=self.atol)
        if not res.finite:
            raise nonfinite_error(type(self).__name__, i, ctx.coeffs.t, at=watched.first_nonfinite())
        nfe = ctx.memory.get("nfe", 0) + res.nfe_per_sample
        ctx.memory["nfe"] = nfe
        ctx.stats.update(nfe_per_sample=nfe.tolist(), nfe_mean=float(nfe.double().mean()), nfe_max=int(nfe.max()),
                         sample_evaluations=int(nfe.sum()))  # fmt: skip
        return res.y

    def _adaptive_step(self, term: Term, y: State, i: int, ctx: StepContext) -> State:
        watched = _Watched(term, *ctx.coeffs.t[i : i + 2])
        span = ctx.times[i : i + 2]
        # step_t makes the solver stop exactly at the interval's end instead of stepping past it and interpolating.
        options = dict(self.options)
        if "step_t" in options:  # the user's stops as well
            span_end = torch.as_tensor(options["step_t"], dtype=span.dtype, device=span.device)
            options["step_t"] = torch.cat([span_end, span[1:]]).unique()
        else:
            options["step_t"] = span[1:]
        try:
            out = odeint(watched, y, span, method=self.spec.torchdiffeq_name, rtol=self.rtol, atol=self.atol,
                         options=options)  # fmt: skip
        except AssertionError as err:  # torchdiffeq's checks for non-finite states and step-size underflow
            raise nonfinite_error(type(self).__name__, i, ctx.coeffs.t, at=watched.first_nonfinite()) from err
        return tuple(c[-1] for c in out)

    def describe(self) -> dict[str, Any]:
        return (
            super().describe()
            | {"method": self.method, "rtol": self.rtol, "atol": self.atol}
            | ({"per_sample": True} if self.per_sample else {})
        )
