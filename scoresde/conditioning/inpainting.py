"""Inpainting with an unconditional score model (Song et al. 2021, sec. 5 and Appendix I.2; Lugmayr et al. 2022).

The paper's *replacement* method runs any reverse-time sampler and, after every step, overwrites the observed
coordinates of x_t with the observation forward-noised to t, y_t = m(t) y + s(t) z. It is a wrapper around a
:class:`~scoresde.solvers.Solver` (:class:`ReplacementStep`), so every solver of the library gets it: PC with any
predictor and corrector (the corrector's output is replaced too, as in the paper's code), Euler-Maruyama, ancestral,
and the probability-flow ODE or fast solvers (with ``noise="fixed"`` the observed part follows one deterministic
path). The method is biased: the unobserved coordinates see the observed ones only through the score at the current
time, never through a correction for the observed noise draw, and the bias does not vanish with more steps
(benchmarks/inpainting_accuracy.py measures it). RePaint (Lugmayr et al. 2022) reduces it by resampling: after each
step it noises x back to the previous time with the exact forward kernel and repeats the step, U times.
:class:`~scoresde.conditioning.smc.ParticleFilter` is the consistent alternative.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from .._validation import check_int
from ..sampling import make_solver
from ..sde import SDE, ScoreFn
from ..solvers import NoCorrector, PredictorCorrector, SampleInfo
from ..solvers.base import CountingScore, Solver, StepContext, integrate
from .methods import ConditionalMethod, make_method, sample_conditional
from .observation import BoundObservation, Observation, ObservedPath
from .smc import ParticleFilter


class ReplacementStep(Solver):
    """A solver step followed by x_{t_{i+1}}[observed] <- y_{t_{i+1}} (for PC: also after the corrector at t_i).

    Args:
        solver: The wrapped solver.
        obs: The observation, bound to its value.
        path: The forward-noised observation, started on the run's grid.
    """

    def __init__(self, solver: Solver, obs: BoundObservation, path: ObservedPath) -> None:
        self.solver, self.obs, self.path = solver, obs, path

    def step(self, x: Tensor, i: int, ctx: StepContext) -> Tensor:
        pc = self.solver
        if isinstance(pc, PredictorCorrector) and not isinstance(pc.corrector, NoCorrector):
            x = self.obs.merge(pc.corrector.correct(x, i, ctx), self.path.at(i))
            x = pc.predictor.step(x, i, ctx)
        else:
            x = pc.step(x, i, ctx)
        return self.obs.merge(x, self.path.at(i + 1))


class RePaintStep(Solver):
    """RePaint's resampling (Lugmayr et al. 2022, Algorithm 1, jump length 1) around a :class:`ReplacementStep`.

    U times: step from t_i to t_{i+1} with replacement; between repeats, noise back to t_i with the exact forward
    kernel x_{t_i} = r_i x_{t_{i+1}} + sqrt(v_i) z (:meth:`SDE.discretize`), so the unobserved part is redrawn given
    the last observed draw.
    """

    def __init__(self, inner: ReplacementStep, resamplings: int) -> None:
        self.inner, self.resamplings = inner, resamplings

    def step(self, x: Tensor, i: int, ctx: StepContext) -> Tensor:
        r, v = ctx.coeffs.r[i], ctx.coeffs.v[i]
        for u in range(self.resamplings):
            if u:
                x = r * x + math.sqrt(v) * ctx.noise(x)
            x = self.inner.step(x, i, ctx)
        return x


def solver_cost(solver: Solver, sde: SDE, steps: int, eps: float) -> int:
    """Score evaluations of one run of ``solver`` with ``steps`` intervals, counted on a one-number probe state.

    Raises:
        ValueError: for a solver with adaptive step sizes, whose cost depends on the score (give ``steps``).
    """
    if solver.adaptive:
        raise ValueError(f"nfe= needs a fixed-step solver, {solver!r} adapts its steps; give steps= instead")
    probe = CountingScore(lambda x, t: -x)
    with torch.no_grad():
        integrate(solver, sde, probe, torch.ones(1, 1, dtype=torch.float64), solver.grid(sde, steps, eps))
    return probe.calls


class Replacement(ConditionalMethod):
    """The paper's inpainting: any solver, the observed coordinates replaced by y_t after every step.

    Args:
        solver: A name in ``scoresde.SOLVERS`` or a Solver object (default "reverse_diffusion": one score
            evaluation per step, for every SDE; "pc" is the paper's VE sampler with a Langevin corrector).
        noise: How y_t is drawn: "fresh" (a new draw per step, the paper's), "fixed" (one draw per sample: the
            natural choice for deterministic solvers such as "ode" or "dpm_solver3") or "bridge" (one forward path).
        **solver_options: Constructor arguments of the named solver, e.g. ``predictor="ancestral"``.
    """

    def __init__(self, solver: str | Solver = "reverse_diffusion", noise: str = "fresh", **solver_options: Any):
        self.solver = make_solver(solver, **solver_options)
        self.noise = ObservedPath(noise).noise
        self._costs: dict[tuple, int] = {}

    @property
    def default_steps(self) -> int:  # type: ignore[override]
        return self.solver.default_steps

    def grid(self, sde: SDE, steps: int, eps: float) -> Tensor:
        return self.solver.grid(sde, steps, eps)

    def _solver_cost(self, sde: SDE, steps: int, eps: float) -> int:
        key = (sde, steps, eps)
        if key not in self._costs:
            self._costs[key] = solver_cost(self.solver, sde, steps, eps)
        return self._costs[key]

    def cost(self, sde: SDE, steps: int, eps: float, denoise: bool) -> int:
        return self._solver_cost(sde, steps, eps) + int(denoise)

    def _stepper(self, obs: BoundObservation, path: ObservedPath) -> Solver:
        return ReplacementStep(self.solver, obs, path)

    def run(self, sde, score, obs, times, *, denoise, generator, progress) -> tuple[Tensor, dict[str, Any]]:
        self.solver.check(sde)
        path = ObservedPath(self.noise)
        path.start(obs.y, sde.mean_scale(times).tolist(), sde.std(times).tolist(), generator)
        shape, y = obs.y.shape, obs.y
        x = obs.merge(sde.prior_sampling(shape, generator=generator, device=y.device, dtype=y.dtype), path.at(0))
        x, _ = integrate(self._stepper(obs, path), sde, score, x, times, generator=generator, progress=progress,
                         denoise=denoise)  # fmt: skip
        return x, {}

    def describe(self) -> dict[str, Any]:
        return {"solver": type(self.solver).__name__} | self.solver.describe() | {"noise": self.noise}


class RePaint(Replacement):
    """RePaint (Lugmayr et al. 2022): replacement with U resampling rounds per step (jump length 1).

    Args:
        solver: As for :class:`Replacement` (default "ancestral", RePaint's DDPM step).
        resamplings: U, the number of times every step is taken (RePaint: 10); U = 1 is :class:`Replacement`.
        noise: As for :class:`Replacement` (RePaint draws afresh: "fresh").
        **solver_options: Constructor arguments of the named solver.

    A run costs U x (solver cost) score evaluations per sample; the default 100 steps x 10 rounds = 1000.
    """

    def __init__(self, solver: str | Solver = "ancestral", resamplings: int = 10, noise: str = "fresh", **options):
        super().__init__(solver, noise, **options)
        self.resamplings = check_int("resamplings", resamplings)

    @property
    def default_steps(self) -> int:  # type: ignore[override]
        return 100

    def cost(self, sde: SDE, steps: int, eps: float, denoise: bool) -> int:
        return self.resamplings * self._solver_cost(sde, steps, eps) + int(denoise)

    def _stepper(self, obs: BoundObservation, path: ObservedPath) -> Solver:
        return RePaintStep(ReplacementStep(self.solver, obs, path), self.resamplings)

    def describe(self) -> dict[str, Any]:
        return super().describe() | {"resamplings": self.resamplings}


def _consistency_editing() -> type[ConditionalMethod]:
    """Algorithm 4 of Song et al. 2023 for a consistency model (scoresde.consistency imports this package)."""
    from ..consistency.editing import ConsistencyEditing

    return ConsistencyEditing


METHODS: dict[str, type[ConditionalMethod]] = {"replacement": Replacement, "repaint": RePaint, "smc": ParticleFilter,
                                               "consistency": _consistency_editing()}  # fmt: skip
"""The ``method`` names of :func:`inpaint` and :func:`~scoresde.colorize`."""


def inpaint(
    sde: SDE,
    score_fn: ScoreFn,
    y: Tensor,
    mask: Tensor,
    *,
    method: str | ConditionalMethod = "replacement",
    generator: torch.Generator | None = None,
    nfe: int | None = None,
    steps: int | None = None,
    eps: float = 1e-3,
    denoise: bool = True,
    progress: bool = False,
    **options: Any,
) -> tuple[Tensor, SampleInfo]:
    """Sample the unobserved pixels of ``y`` from the model p(x | x[mask] = y[mask]) (Song et al. 2021, App. I.2).

    Args:
        sde: The forward SDE the score belongs to.
        score_fn: ``score_fn(x, t)``, x of shape (B, *event_shape), t of shape (B,); returns x's shape.
        y: Observed data, shape (B, *event_shape); only the entries where ``mask`` is True are used.
        mask: Boolean, True where observed; shape (B, *event_shape) or event_shape (one mask for all samples).
        method: "replacement" (the paper's; :class:`Replacement`), "repaint" (:class:`RePaint`), "smc" (a particle
            filter that converges to p(x | y); :class:`~scoresde.conditioning.smc.ParticleFilter`), "consistency"
            (Algorithm 4 of Song et al. 2023 with a ConsistencyModel as ``score_fn``;
            :class:`~scoresde.consistency.editing.ConsistencyEditing`) or a ConditionalMethod object.
        generator: Random generator for every draw (on y's device).
        nfe: Budget of score evaluations per sample; the largest step count within it is used (never more).
        steps: Grid intervals instead of a budget (default: the method's).
        eps: End time in (0, T) of the reverse process.
        denoise: Finish with Tweedie's denoising step at eps (one evaluation per sample and particle).
        progress: Show a progress bar.
        **options: Constructor arguments of the named method, e.g. ``solver="pc"``, ``resamplings=10``,
            ``particles=10``, and solver options such as ``corrector="none"``.

    Returns:
        Samples of shape (B, *event_shape), equal to y where observed, and a SampleInfo (``nfe``: score
        evaluations per sample; ``extras``: the method's settings and statistics, e.g. the particle filter's ESS).

    Raises:
        ValueError: for a mask that is not boolean or does not fit y, a non-finite y, bad steps / nfe / eps, or
            an unknown method.
    """
    method = make_method(method, METHODS, **options)
    return sample_conditional(
        sde, score_fn, Observation(mask), y, method, steps=steps, nfe=nfe, eps=eps, denoise=denoise,
        generator=generator, progress=progress,
    )  # fmt: skip
