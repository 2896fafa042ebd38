"""``sample``: the one entry point that draws samples from a score model with any solver."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ._validation import check_generator, from_name
from .consistency.parameterization import check_model_kind
from .sde import SDE, ScoreFn
from .solvers import SOLVERS, grids
from .solvers.base import Callback, CountingScore, SampleInfo, Solver, integrate, timed
from .solvers.noise import BrownianNoise, KeyedNoise, NoiseSource


def make_solver(solver: str | Solver, **options: Any) -> Solver:
    """A solver object from a name in ``SOLVERS`` and its constructor options, or the object itself."""
    return from_name("solver", solver, SOLVERS, Solver, **options)


def make_noise(
    noise: str | NoiseSource | None, seed: int | None, generator: torch.Generator | None, eps: float, T: float
) -> NoiseSource | None:
    """The run's noise source from ``sample``'s ``noise`` and ``seed`` options (None: the generator's draws)."""
    if noise is None or isinstance(noise, NoiseSource):
        if seed is not None:
            raise ValueError("seed applies only to noise='brownian' or 'keyed'")
        return noise
    if noise not in ("brownian", "keyed"):
        raise ValueError(f"noise must be None, 'brownian', 'keyed' or a NoiseSource, got {noise!r}")
    if seed is None:
        seed = int(torch.randint(2**62, (), generator=generator, device=generator.device if generator else "cpu"))
    return BrownianNoise(seed, eps, T) if noise == "brownian" else KeyedNoise(seed)


def _initial_state(sde, shape, start, generator, device, dtype) -> Tensor:
    if start is None:
        if shape is None:
            raise ValueError("give the sample shape (B, *event_shape) or a start tensor")
        return sde.prior_sampling(shape, generator=generator, device=device, dtype=dtype)
    if not isinstance(start, Tensor) or not start.is_floating_point() or start.ndim < 1:
        raise TypeError("start must be a floating-point tensor of shape (B, *event_shape)")
    if shape is not None and tuple(start.shape) != tuple(shape):
        raise ValueError(f"start has shape {tuple(start.shape)} but shape={tuple(shape)} was given")
    return start.to(device=device if device is not None else start.device, dtype=dtype or start.dtype)


def _grid(sde, solver, eps, steps, nfe, times, start) -> Tensor:
    """The solver's planned grid, or the explicit ``times`` checked against it."""
    if times is None:
        return solver.plan(sde, eps, steps=steps, nfe=nfe)
    grids.check_steps_eps(sde, 1, eps)
    planned = solver.plan(sde, eps, steps=steps, nfe=nfe) if steps is not None or nfe is not None else None
    times = grids.check_times(sde, times, eps, intervals=None if planned is None else len(planned) - 1)
    if start is None and float(times[0]) != sde.T:
        raise ValueError(f"times[0] must be T = {sde.T} when x_T is drawn from the prior, got {float(times[0])}")
    return times


def sample(
    sde: SDE,
    score_fn: ScoreFn,
    shape: tuple[int, ...] | None,
    *,
    solver: str | Solver = "pc",
    steps: int | None = None,
    nfe: int | None = None,
    eps: float = 1e-3,
    denoise: bool = True,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype | None = None,
    progress: bool = False,
    start: Tensor | None = None,
    callback: Callback | None = None,
    trajectory: bool = False,
    noise: str | NoiseSource | None = None,
    seed: int | None = None,
    times: Tensor | None = None,
    **solver_options: Any,
) -> tuple[Tensor, SampleInfo]:
    """Sample from the model whose score is ``score_fn`` by solving the reverse-time process of ``sde``.

    Args:
        sde: The forward SDE the score belongs to.
        score_fn: ``score_fn(x, t)``, x of shape (B, *event_shape), t of shape (B,); returns x's shape.
        shape: (B, *event_shape) of the sample; may be None when ``start`` is given.
        solver: A name in ``scoresde.solvers.SOLVERS`` ("pc", "euler_maruyama", "ode", "ald", ...) or a Solver.
        steps: Grid intervals; None takes the solver's default: 1000 (EM, PC, reverse diffusion, ancestral),
            10 noise levels (ALD), 1 output interval (adaptive ODE) or 100 steps (fixed-step ODE), 18 (EDM), 20 (DPM).
        nfe: Budget of score evaluations for the solve instead of ``steps`` (give at most one of them). The solver
            plans its grid to spend at most ``nfe`` (e.g. nfe // 2 Heun steps); the final denoising call is not
            counted in the budget, so ``info.nfe <= nfe + denoise``. An adaptive solver that needs more raises
            :class:`~scoresde.solvers.BudgetExceededError`.
        eps: End time in (0, T); the reverse process stops there.
        denoise: Finish with Tweedie's denoising step at eps (one more score evaluation, counted in ``info.nfe``
            but not in the ``nfe`` budget).
        generator: Random generator for the prior draw and every noise draw.
        device: Device of the sample (default: the generator's, start's, or the default device).
        dtype: Floating dtype of the sample (default: start's or torch's default).
        progress: Show a tqdm progress bar.
        start: x_T to start from instead of a prior draw, shape (B, *event_shape).
        callback: ``callback(i, t, x)`` after every step with the state x at time t.
        trajectory: Store the states at every grid time in ``info.trajectory``, shape (N + 1, B, *event_shape).
        noise: Where the solver's noise comes from: None (independent draws from ``generator``), "brownian"
            (a Brownian path per sample keyed by (seed, index in the batch), so a sample keeps its path when the
            step count, grid or batch changes: :class:`~scoresde.solvers.noise.BrownianNoise`), "keyed"
            (independent draws keyed by (seed, index in the batch, draw count): batch-free like "brownian" and
            much cheaper per step (docs/guides/sampling.md), but a new step count gives new noise:
            :class:`~scoresde.solvers.noise.KeyedNoise`) or a NoiseSource.
        seed: Seed of the "brownian" or "keyed" noise (None: drawn from ``generator``).
        times: An explicit grid t_0 > ... > t_N instead of the solver's, shape (N + 1,), strictly decreasing, inside
            [eps, T], t_0 = T unless ``start`` is given (e.g. ``optimize_schedule(...).times``). With ``steps`` or
            ``nfe`` its length must be the one they buy (``solver.plan``); the run ends at t_N.
        **solver_options: Constructor arguments of the named solver, e.g. ``method="rk4"`` or ``corrector="none"``.

    Returns:
        The samples, shape (B, *event_shape), and a :class:`SampleInfo` (nfe spent, wall_time, steps, ...).

    Raises:
        ValueError: for an unknown solver, steps < 1, both steps and nfe, an nfe below one step's cost, eps
            outside (0, T), a score of the wrong shape.
        NonFiniteError: if the trajectory becomes NaN or infinite (names the step and time).
    """
    solver = make_solver(solver, **solver_options)
    check_model_kind(sde, score_fn, solver, eps)  # a Score/ConsistencyModel knows its SDE and what it outputs
    times = _grid(sde, solver, eps, steps, nfe, times, start)
    solver.check(sde)
    if device is None:
        device = start.device if isinstance(start, Tensor) else generator.device if generator is not None else None
    device = torch.device(device) if device is not None else torch.empty(0).device
    check_generator(generator, device, "the sample")
    score = CountingScore(score_fn, budget=nfe)
    noise_source = make_noise(noise, seed, generator, eps, sde.T)
    stats: dict[str, Any] = {}
    x = _initial_state(sde, shape, start, generator, device, dtype)
    denoise = denoise and getattr(solver, "final_denoise", True)  # a consistency sampler ends on f(x, eps)

    def run() -> tuple[Tensor, Tensor | None]:
        with torch.no_grad():
            return integrate(solver, sde, score, x, times, generator=generator, callback=callback,
                             trajectory=trajectory, progress=progress, nfe_budget=nfe, stats=stats, noise=noise_source,
                             denoise=denoise)  # fmt: skip

    (out, traj), wall = timed(run, x.device)
    extras = solver.describe() | {"denoise": denoise} | stats
    info = SampleInfo(score.calls, wall, len(times) - 1, type(solver).__name__, extras, times, traj)
    return out, info
