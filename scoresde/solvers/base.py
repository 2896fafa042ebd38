"""The solver interface, the per-grid coefficient table and THE integration loop every sampler runs through.

A sampler is split into three parts that never know each other (cf. diffrax): the *process* (an
:class:`~scoresde.sde.SDE` and a score function), the *time grid* (a function in :mod:`.grids`) and the
*solver*, an object with a ``step(x, i, ctx)`` method that moves the state from grid time ``t_i`` to
``t_{i+1}``. :func:`integrate` walks the grid once for every solver: it calls the solver, records the
trajectory, calls the user's callback, takes the final denoising step and checks for non-finite values (the one
check of the package: :func:`nonfinite_error` words it for every solver).

A run is planned in score evaluations or in steps: :func:`steps_for_budget` (the one planner, behind
:meth:`Solver.plan` and the conditional samplers) turns an ``nfe`` budget into the largest step count that fits it,
and :class:`CountingScore` (the one counter) counts calls and evaluated rows and enforces the budget, so no solver
can spend more than it was given.

Everything a step needs that depends only on the grid (m, s, f, g^2 at every grid time; the ratio r and
variance v of the exact one-step kernel of every interval) is computed once per run, in float64, by
:class:`GridCoefficients` and stored as Python floats, so a step does only the tensor arithmetic of its
update rule: no per-step input validation, no host-device synchronisation.
"""

from __future__ import annotations

import abc
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, NamedTuple

import torch
from torch import Tensor

from .._validation import check_callable, check_count, check_positive
from ..sde import SDE, ScoreFn
from . import grids
from .noise import NoiseSource

Callback = Callable[[int, float, Tensor], None]
"""``callback(i, t, x)``: called after step ``i`` with the state ``x`` at grid time ``t = t_{i+1}``."""


class NonFiniteError(FloatingPointError):
    """A sampler produced NaN or infinite values; the message names the first bad step and its time."""


class BudgetExceededError(RuntimeError):
    """A solver asked for more score evaluations than its ``nfe`` budget allows (an adaptive solve that needs more)."""


class GaussianTransition(NamedTuple):
    """A solver step's Gaussian kernel x_{t_{i+1}} ~ N(mean, var I) given the state and score at t_i.

    Attributes:
        mean: Shape of the state (B, *event_shape).
        var: The variance, a float (or a 0-d tensor where it depends on the batch).
    """

    mean: Tensor
    var: float | Tensor


@dataclass
class SampleInfo:
    """What a sampling run reports.

    Attributes:
        nfe: Number of score evaluations actually made (including the final denoising call, which an ``nfe``
            budget does not count).
        wall_time: Seconds from the prior draw to the returned sample.
        steps: Number of grid intervals walked (e.g. levels for ALD, output intervals for adaptive ODEs).
        solver: Name of the solver class.
        extras: Solver-specific settings (``Solver.describe()``, e.g. predictor/corrector names, grid) and per-run
            statistics (``StepContext.stats``, e.g. NFE per sample of an adaptive solver).
        times: Grid times t_0 = T > ... > t_N = eps, shape (N + 1,), float64 on the CPU.
        trajectory: States at every grid time, shape (N + 1, B, *event_shape), if requested; else None.
    """

    nfe: int
    wall_time: float
    steps: int
    solver: str
    extras: dict[str, Any] = field(default_factory=dict)
    times: Tensor | None = None
    trajectory: Tensor | None = None


class CountingScore:
    """A score function that counts its calls, enforces a budget and checks the shape of what it returns.

    ``calls`` counts batched calls (what a budget bounds); ``rows`` counts the states evaluated, summed over calls
    (the evaluations per sample of a run whose calls take different numbers of states, e.g. a particle filter's
    particles and probes, are ``rows / batch``).

    Args:
        score_fn: ``score_fn(x, t)`` with x of shape (B, *event_shape) and t of shape (B,).
        budget: Most calls allowed (None: unlimited); a call beyond it raises :class:`BudgetExceededError`.
            Solvers plan their steps to stay within it, so only a solver that cannot (an adaptive one) meets it.
    """

    def __init__(self, score_fn: ScoreFn, budget: int | None = None) -> None:
        self.score_fn = check_callable("score_fn", score_fn)
        self.calls, self.rows = 0, 0
        self.budget = budget

    def __call__(self, x: Tensor, t: Tensor) -> Tensor:
        if self.budget is not None and self.calls >= self.budget:
            raise BudgetExceededError(f"the solve needs more than its budget of nfe={self.budget} score evaluations")
        self.calls += 1
        self.rows += x.shape[0]
        out = self.score_fn(x, t)
        if not isinstance(out, Tensor) or out.shape != x.shape:
            got = tuple(out.shape) if isinstance(out, Tensor) else type(out).__name__
            raise ValueError(f"score_fn returned {got} for x of shape {tuple(x.shape)}; it must return x's shape")
        return out


@dataclass(frozen=True)
class GridCoefficients:
    """Scalar SDE coefficients on a time grid t_0 > t_1 > ... > t_N, as Python floats (computed in float64).

    Per grid time (N + 1 entries): ``t``, mean scale ``m``, std ``s``, noise level ``sigma = s / m``,
    drift coefficient ``f`` and squared diffusion ``g2``. Per interval i (N entries, from t_i down to
    t_{i+1}): ``dt = t_i - t_{i+1} > 0`` and the exact forward kernel x_{t_i} = r x_{t_{i+1}} + sqrt(v) z of
    :meth:`SDE.discretize`, so r = m(t_i) / m(t_{i+1}) and v = s(t_i)^2 - r^2 s(t_{i+1})^2 (computed stably).
    An increasing grid (the likelihood's, from eps up to T) has dt < 0, and r, v are the kernel from the
    interval's earlier end to its later one.
    """

    t: list[float]
    m: list[float]
    s: list[float]
    sigma: list[float]
    f: list[float]
    g2: list[float]
    dt: list[float]
    r: list[float]
    v: list[float]

    @classmethod
    def from_grid(cls, sde: SDE, times: Tensor) -> GridCoefficients:
        """Evaluate the coefficients of ``sde`` on ``times`` (shape (N + 1,), decreasing) in one pass each."""
        t = times.to(torch.float64).cpu()
        dt = t[:-1] - t[1:]
        # SDE.discretize is linear in x: on a unit state its drift part is (r - 1) and G = sqrt(v).
        unit = torch.ones(len(dt), 1, dtype=torch.float64)
        kernel = sde.discretize(unit, torch.maximum(t[:-1], t[1:]), dt.abs())
        m, s = sde.mean_scale(t), sde.std(t)
        return cls(
            t=t.tolist(),
            m=m.tolist(),
            s=s.tolist(),
            sigma=(s / m).tolist(),
            f=sde.f(t).tolist(),
            g2=sde.g2(t).tolist(),
            dt=dt.tolist(),
            r=(kernel.f[:, 0] + 1).tolist(),
            v=(kernel.G**2).tolist(),
        )


@dataclass
class StepContext:
    """What a solver's ``step`` may use besides the state: the process, the grid and a noise source.

    Attributes:
        nfe_budget: Most score evaluations the run may spend, the final denoising call excluded (None: unlimited).
            The grid from :meth:`Solver.plan` already fits it; solvers whose cost per interval varies (order
            mixing, adaptive stepping) read it to decide how to spend it.
        stats: Per-run statistics a solver reports (e.g. NFE per sample); merged into ``SampleInfo.extras``.
        memory: Per-run scratch space of a solver, empty at the start of every run (e.g. a multistep method's
            previous model outputs).
    """

    sde: SDE
    score: CountingScore
    coeffs: GridCoefficients
    times: Tensor  # (N + 1,) grid times in the sample's dtype and device
    batch: int
    generator: torch.Generator | None
    nfe_budget: int | None = None
    stats: dict[str, Any] = field(default_factory=dict)
    memory: dict[str, Any] = field(default_factory=dict)

    def t(self, i: int) -> Tensor:
        """Grid time t_i as a (B,) tensor for the score function (a view, no copy, made once per run)."""
        if self._t is None:
            self._t = [self.times[j].expand(self.batch) for j in range(len(self.times))]
        return self._t[i]

    noise_source: NoiseSource | None = None  # None: independent draws from ``generator``
    _t: list[Tensor] | None = field(default=None, repr=False)

    def noise(self, like: Tensor) -> Tensor:
        """A fresh standard normal draw of ``like``'s shape, dtype and device (from :attr:`noise_source`)."""
        if self.noise_source is not None:
            return self.noise_source.normal(like)
        return torch.randn(like.shape, generator=self.generator, dtype=like.dtype, device=like.device)

    def increment(self, like: Tensor, i: int) -> Tensor:
        """The normalised Brownian increment (W(t_i) - W(t_{i+1})) / sqrt(t_i - t_{i+1}) of grid interval i, ~ N(0, I).

        An independent draw like :meth:`noise` by default; the increment of each sample's own path under a
        :class:`~.noise.BrownianNoise` source (``sample(..., noise="brownian")``).
        """
        if self.noise_source is None:
            return self.noise(like)
        t = self.times.new_tensor(0, dtype=torch.float64, device="cpu")
        return self.noise_source.increment(like, t + self.coeffs.t[i], t + self.coeffs.t[i + 1])


def check_steps_or_nfe(steps: int | None, nfe: int | None) -> None:
    """Refuse a run given both a step count and a budget: the one place that says so for every front end."""
    if steps is not None and nfe is not None:
        raise ValueError(f"give steps or nfe, not both (got steps={steps!r}, nfe={nfe!r})")


def steps_for_budget(cost: Callable[[int], int], nfe: int, what: str) -> int:
    """The largest step count whose cost (score evaluations, non-decreasing in the steps) is at most ``nfe``.

    The budget planner of the package: :meth:`Solver.plan` (cost = steps x ``nfe_per_step``) and the conditional
    samplers (cost per sample, e.g. particles x steps) both plan through it.

    Raises:
        ValueError: if ``nfe`` is not a count or is below the cost of one step of ``what``.
    """
    c1 = cost(1)
    if check_count("nfe", nfe) < c1:
        raise ValueError(f"nfe={nfe} is below the minimum of {c1} score evaluations for {what} (the cost of one step)")
    steps = 1 + (nfe - c1) // max(cost(2) - c1, 1)  # exact when the cost is affine in the steps; checked either way
    while steps > 1 and cost(steps) > nfe:
        steps -= 1
    while steps < nfe and cost(steps + 1) <= nfe:
        steps += 1
    return steps


class Solver(abc.ABC):
    """A numerical method for the reverse-time process, moving the state one grid interval per :meth:`step`.

    Subclasses set ``order`` (convergence order of the method, None where it has no single one),
    ``default_steps``, ``nfe_per_step`` (score evaluations per grid interval), ``default_grid`` (a name in
    :data:`grids.GRIDS`), ``reported`` (the attributes :meth:`describe` reports) and ``adaptive`` (True where the
    step sizes follow an error estimate: a budget then keeps the default grid of output intervals and only bounds
    the evaluations), implement :meth:`step` and may override
    :meth:`plan` (how a budget becomes a grid; needed where the cost is not steps x nfe_per_step) and :meth:`check`
    (refuse SDEs or settings for which the method is not meaningful). Subclasses with their own ``__init__`` call
    ``super().__init__(grid=grid, rho=rho)``.

    Args:
        grid: Where the steps fall: a name in ``grids.GRIDS`` ("uniform" in t, "log_snr" uniform in
            lambda = -log sigma, "quadratic" in t, "karras" sigma^(1/rho) uniform); None: ``default_grid``.
        rho: Exponent of the "karras" grid (EDM: 7); unused by the other grids.
    """

    order: float | None = None
    default_steps: int = 1000
    nfe_per_step: int = 1
    default_grid: str = "uniform"
    adaptive: bool = False
    reported: tuple[str, ...] = ()
    grid_name: str | None = None
    rho: float = 7.0

    def __init__(self, *, grid: str | None = None, rho: float = 7.0) -> None:
        self.grid_name = None if grid is None else grids.check_name(grid)
        self.rho = check_positive("rho", rho)

    @property
    def grid_kind(self) -> str:
        """The name of the grid this solver walks: the ``grid`` option or the solver's ``default_grid``."""
        return self.grid_name or self.default_grid

    def grid(self, sde: SDE, steps: int, eps: float) -> Tensor:
        """Grid times T = t_0 > ... > t_steps = eps, float64 of shape (steps + 1,), on :attr:`grid_kind`."""
        return grids.make(self.grid_kind, sde, steps, eps, rho=self.rho)

    def plan(self, sde: SDE, eps: float, *, steps: int | None = None, nfe: int | None = None) -> Tensor:
        """The time grid of a run with ``steps`` intervals or within a budget of ``nfe`` score evaluations.

        Give at most one of them; neither takes ``default_steps``. A budget buys nfe // nfe_per_step intervals
        (an ``adaptive`` solver keeps ``default_steps`` output intervals and spends the budget by its error control).

        Returns:
            Grid times T = t_0 > ... > t_N = eps, float64 of shape (N + 1,).

        Raises:
            ValueError: if both are given, or the budget is below the cost of one interval.
        """
        check_steps_or_nfe(steps, nfe)
        if nfe is not None:
            bought = steps_for_budget(lambda k: k * self.nfe_per_step, nfe, type(self).__name__)
            steps = None if self.adaptive else bought
        return self.grid(sde, self.default_steps if steps is None else steps, eps)

    def check(self, sde: SDE) -> None:
        """Raise ``ValueError`` if this solver cannot sample from ``sde``; every linear SDE is fine by default."""
        return None

    @abc.abstractmethod
    def step(self, x: Tensor, i: int, ctx: StepContext) -> Tensor:
        """Move ``x`` from grid time t_i to t_{i+1}.

        Args:
            x: State at t_i, shape (B, *event_shape).
            i: Index of the interval, 0 <= i < N.
            ctx: The run's process, coefficients and noise source.

        Returns:
            The state at t_{i+1}, same shape as ``x``.
        """

    def variants(self, steps: int) -> list[Solver]:
        """This solver and the same method with the other settings that change its accuracy but not its cost on a
        grid of ``steps`` intervals (``optimize_schedule`` chooses between them); by default only itself."""
        return [self]

    def describe(self) -> dict[str, Any]:
        """Settings worth reporting in :attr:`SampleInfo.extras`: the grid (and rho on "karras") and the attributes
        named in ``reported`` (subclasses with more to say add it to ``super().describe()``)."""
        grid = {"grid": self.grid_kind} | ({"rho": self.rho} if self.grid_kind == "karras" else {})
        return grid | {name: getattr(self, name) for name in self.reported}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.describe().items())
        return f"{type(self).__name__}({args})"


class GaussianSolver(Solver):
    """A solver whose step is a draw from a Gaussian kernel given the state and its score at t_i (:meth:`transition`,
    which the particle filter reuses as its proposal): one score evaluation per step."""

    @abc.abstractmethod
    def transition(self, x: Tensor, score: Tensor, i: int, ctx: StepContext) -> GaussianTransition:
        """The kernel N(mean, var I) of x_{t_{i+1}} given x = x_{t_i} and score = s(x, t_i)."""

    def step(self, x: Tensor, i: int, ctx: StepContext) -> Tensor:
        mean, var = self.transition(x, ctx.score(x, ctx.t(i)), i, ctx)
        return mean + (var.sqrt() if isinstance(var, Tensor) else math.sqrt(var)) * ctx.increment(x, i)


def tweedie_denoise(sde: SDE, score: ScoreFn, x: Tensor, t: float) -> Tensor:
    """Tweedie's formula: E[x_0 | x_t] = (x_t + s(t)^2 grad log p_t(x_t)) / m(t); one score evaluation.

    At t = eps this is the final denoising step of NCSNv2 (Song & Ermon 2020) and of Song et al. 2021;
    the division by m(eps) (= 1 for VE, 1 - O(eps) for VP) makes it the exact posterior mean.
    """
    m, s = float(sde.mean_scale(t)), float(sde.std(t))
    time = torch.full((x.shape[0],), t, dtype=x.dtype, device=x.device)
    return (x + s**2 * score(x, time)) / m


def nonfinite_error(name: str, i: int, t: list[float], at: float | None = None) -> NonFiniteError:
    """The error for NaN or infinite values in step ``i`` of the grid ``t`` (i = N: the final denoising step).

    The one wording of the package: :func:`integrate` raises it, and so does an adaptive method that meets
    non-finite values inside its interval (``at``: the time of the first evaluation that gave them).
    """
    if i == len(t) - 1:
        return NonFiniteError(f"the final denoising step at t={t[-1]:.6g} gave non-finite values; check the score")
    first = "" if at is None else f", first at t={at:.6g}"
    return NonFiniteError(
        f"{name} produced non-finite values at step {i} of {len(t) - 1} (from t={t[i]:.6g} to t={t[i + 1]:.6g}"
        f"{first}); check the score function and the step count"
    )


def integrate(
    solver: Solver,
    sde: SDE,
    score: CountingScore,
    x: Tensor | tuple[Tensor, ...],
    times: Tensor,
    *,
    generator: torch.Generator | None = None,
    callback: Callback | None = None,
    trajectory: bool = False,
    progress: bool = False,
    nfe_budget: int | None = None,
    stats: dict[str, Any] | None = None,
    noise: NoiseSource | None = None,
    denoise: bool = False,
) -> tuple[Tensor, Tensor | None]:
    """Walk the grid ``times`` with ``solver`` from the state ``x`` at ``times[0]``: the one integration loop.

    Finiteness is recorded on the device at every step (as sum(x), six times cheaper than isfinite(x).all() and
    equally sensitive to NaN and inf; it also flags sums that overflow) and checked once at the end (one
    reduction per step, one isfinite and one synchronisation per run), so a NaN stops the run with an error naming
    the first bad step.

    Args:
        solver: The method taking each step.
        sde: The forward SDE whose reverse is sampled.
        score: The counted score function.
        x: Initial state at ``times[0]``, shape (B, *event_shape), or a tuple of such states with a common
            batch (an augmented state, e.g. the likelihood's (x, log-determinant); no trajectory then).
        times: Monotone grid, shape (N + 1,): decreasing for sampling, increasing for the likelihood (any float
            dtype; coefficients are taken in float64).
        generator: Source of the solver's noise.
        callback: Called as ``callback(i, t_{i+1}, x)`` after every step.
        trajectory: Also return the states at every grid time, shape (N + 1, B, *event_shape).
        progress: Show a tqdm progress bar.
        nfe_budget: The run's budget of score evaluations, for solvers that decide how to spend it
            (:attr:`StepContext.nfe_budget`); ``score`` enforces it.
        stats: A dict that becomes :attr:`StepContext.stats` and receives the solver's per-run statistics.
        noise: The run's noise source (:attr:`StepContext.noise_source`); None: draws from ``generator``.
        denoise: Finish with Tweedie's denoising step at ``times[-1]`` (:func:`tweedie_denoise`; one score call
            outside the budget; not in the trajectory, which holds the grid states).

    Returns:
        The state at ``times[-1]`` (denoised with ``denoise``) and the trajectory (or None).

    Raises:
        NonFiniteError: if the state became NaN or infinite; names the first such step and time.
    """
    coeffs = GridCoefficients.from_grid(sde, times)
    single = isinstance(x, Tensor)
    lead = x if single else x[0]
    if (trajectory or denoise) and not single:
        raise ValueError("trajectory and denoise need a single state tensor, not an augmented tuple state")
    ctx = StepContext(sde, score, coeffs, times.to(dtype=lead.dtype, device=lead.device), lead.shape[0], generator,
                      nfe_budget)  # fmt: skip
    if stats is not None:
        ctx.stats = stats
    ctx.noise_source = noise
    sums: list[Tensor] = []
    states = [x] if trajectory else None
    steps: range | Any = range(len(coeffs.dt))
    if progress:
        from tqdm.auto import tqdm

        steps = tqdm(steps, desc=type(solver).__name__, leave=False)
    for i in steps:
        x = solver.step(x, i, ctx)
        sums.append(x.sum() if single else sum(v.sum() for v in x))
        if states is not None:
            states.append(x)
        if callback is not None:
            callback(i, coeffs.t[i + 1], x)
    if denoise:
        score.budget = None  # the final denoising call is outside the solve's budget
        x = tweedie_denoise(sde, score, x, coeffs.t[-1])
        sums.append(x.sum())
    ok = torch.isfinite(torch.stack(sums)) if sums else torch.ones(0, dtype=torch.bool)
    if not bool(ok.all()):
        raise nonfinite_error(type(solver).__name__, int((~ok).nonzero()[0]), coeffs.t)
    return x, (torch.stack(states) if states is not None else None)


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[Any, float]:
    """Run ``fn()`` and return its result and wall time, synchronising CUDA before reading the clock."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    start = time.perf_counter()
    out = fn()
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return out, time.perf_counter() - start
