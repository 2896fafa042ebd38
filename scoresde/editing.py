"""Image-to-image (SDEdit), encoding to the latent of the probability-flow ODE and back, latent interpolation.

* :func:`img2img`: SDEdit (Meng et al. 2022): noise an input to time ``t_start`` with the SDE's exact kernel
  x_t = m(t) x_0 + s(t) z, then solve the reverse process from ``t_start`` down to eps with any solver, on the
  same loop as :func:`scoresde.sample`. ``t_start = T`` is ordinary sampling from the noised input.
* :func:`encode` / :func:`decode`: the probability-flow ODE (Song et al. 2021, eq. 13) maps data at eps to a latent
  at T and back; for a Gaussian prior the latent is approximately N(0, s(T)^2 I) (VE: sigma_max^2).
* :func:`interpolate`: a path between two latents, spherical by default (Shoemake 1985), which keeps the norm a
  Gaussian latent concentrates on; decode the path to interpolate between data points.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ._validation import check_generator
from .models.parameterization import check_score_sde
from .sampling import make_solver, sample
from .sde import SDE, ScoreFn
from .solvers.base import CountingScore, SampleInfo, Solver, integrate
from .solvers.ode import ProbabilityFlowODE


def _check_inputs(sde: SDE, score_fn: ScoreFn, x: Tensor, name: str) -> None:
    check_score_sde(sde, score_fn)
    if not isinstance(x, Tensor) or not x.is_floating_point() or x.ndim < 2:
        raise TypeError(f"{name} must be a floating-point tensor of shape (B, *event_shape)")


def _check_time(name: str, value: Any, sde: SDE, eps: float) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise TypeError(f"{name} must be a float in (eps, T] = ({eps}, {sde.T}], got {value!r}")
    if not eps < float(value) <= sde.T:
        raise ValueError(f"{name} must lie in (eps, T] = ({eps}, {sde.T}], got {value}")
    return float(value)


def edit_grid(solver: Solver, sde: SDE, t_start: float, eps: float, steps: int) -> Tensor:
    """``steps`` intervals of ``solver``'s own grid from ``t_start`` down to eps: t_start > t_1 > ... > eps.

    The solver's grid over [eps, T] is refined until ``steps`` of its times lie below ``t_start``; those last times,
    after t_start itself, are the edit's grid (diffusers' and k-diffusion's img2img keep the tail of the full
    schedule the same way). At ``t_start = T`` it is the solver's grid of ``steps`` intervals.
    """
    lo, hi = steps, steps
    while len(_below(solver.grid(sde, hi, eps), t_start)) < steps:  # bracket the full-grid size, then bisect it
        lo, hi = hi, hi * 2
        if hi > steps * 2**24:
            raise ValueError(f"t_start={t_start} is too close to eps={eps} for {steps} steps of this grid")
    while lo < hi:
        mid = (lo + hi) // 2
        lo, hi = (mid + 1, hi) if len(_below(solver.grid(sde, mid, eps), t_start)) < steps else (lo, mid)
    tail = _below(solver.grid(sde, hi, eps), t_start)[-steps:]
    return torch.cat([torch.tensor([t_start], dtype=torch.float64), tail])


def _below(times: Tensor, t: float) -> Tensor:
    return times[times < t * (1 - 1e-12)]


def img2img(
    sde: SDE,
    score_fn: ScoreFn,
    x: Tensor,
    t_start: float,
    *,
    solver: str | Solver = "pc",
    steps: int | None = None,
    nfe: int | None = None,
    eps: float = 1e-3,
    denoise: bool = True,
    generator: torch.Generator | None = None,
    progress: bool = False,
    **solver_options: Any,
) -> tuple[Tensor, SampleInfo]:
    """SDEdit: noise ``x`` to ``t_start`` with the exact kernel p_t(x_t | x_0), then solve the reverse process to eps.

    A small ``t_start`` keeps the input's layout and changes details; ``t_start = T`` forgets the input and is
    :func:`scoresde.sample` from x_T = m(T) x + s(T) z on the same grid. With exact scores and x drawn from the
    data distribution, the output is again a draw from the data distribution for every ``t_start``.

    Args:
        sde: The forward SDE the score belongs to.
        score_fn: ``score_fn(x, t)``, x of shape (B, *event_shape), t of shape (B,).
        x: The inputs (B, *event_shape), in the model's data range.
        t_start: Where the reverse process starts, in (eps, T]; SDEdit's strength is t_start / T.
        solver: A name in ``scoresde.solvers.SOLVERS`` or a Solver.
        steps: Intervals from t_start to eps (default: the solver's default step count).
        nfe: A budget of score evaluations instead of ``steps`` (give at most one).
        eps: End time in (0, T).
        denoise: Finish with Tweedie's denoising step at eps (one more score evaluation).
        generator: Random generator for the noising draw and the solver's noise.
        progress: Show a progress bar over the solver steps.
        **solver_options: Constructor arguments of the named solver.

    Returns:
        The edited samples (B, *event_shape) and a :class:`SampleInfo` whose ``times`` is the grid from t_start.

    Raises:
        ValueError: for t_start outside (eps, T], both steps and nfe, or a bad solver option.
    """
    _check_inputs(sde, score_fn, x, "x")
    t_start = _check_time("t_start", t_start, sde, eps)
    solver = make_solver(solver, **solver_options)
    intervals = len(solver.plan(sde, eps, steps=steps, nfe=nfe)) - 1  # validates steps/nfe, applies the default
    times = edit_grid(solver, sde, t_start, eps, intervals)
    solver.check(sde)
    check_generator(generator, x.device, "x")
    z = torch.randn(x.shape, generator=generator, device=x.device, dtype=x.dtype)
    x_t = float(sde.mean_scale(t_start)) * x + float(sde.std(t_start)) * z
    # the reverse solve is sample() from x_t on the grid that starts at t_start: one loop, one denoising step
    out, info = sample(sde, score_fn, None, solver=solver, steps=steps, nfe=nfe, eps=eps, denoise=denoise,
                       generator=generator, progress=progress, start=x_t, times=times)  # fmt: skip
    info.extras["t_start"] = t_start
    return out, info


def encode(
    sde: SDE,
    score_fn: ScoreFn,
    x: Tensor,
    *,
    method: str = "dopri5",
    steps: int = 100,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    eps: float = 1e-3,
) -> Tensor:
    """Data -> latent: integrate the probability-flow ODE dx/dt = f(t) x - g(t)^2 s(x, t) / 2 from eps up to T.

    The sampler's loop and ODE solver (:class:`~scoresde.solvers.ProbabilityFlowODE`) walking their grid backwards:
    :func:`decode` with the same ``eps`` and solver settings inverts it up to the solver's error, and the map is the
    forward solve of :func:`scoresde.log_likelihood` (its ``.z``) without the divergence.

    Args:
        sde: The forward SDE the score belongs to.
        score_fn: ``score_fn(x, t)``, x of shape (B, *event_shape), t of shape (B,).
        x: Data (B, *event_shape), in the model's data range.
        method: A name in :data:`scoresde.solvers.ODE_METHODS`: adaptive ("dopri5", "bosh3", "dopri8", ...) or
            fixed-step ("euler", "midpoint", "heun", "rk4") on ``steps`` uniform intervals.
        steps: Uniform steps of a fixed-step method (ignored by adaptive ones).
        rtol, atol: Tolerances of an adaptive method (one step size for the batch, torchdiffeq's RMS norm).
        eps: Start time in (0, T): the time the data are taken to live at.

    Returns:
        The latents x(T), shape of x.

    Raises:
        NonFiniteError: if the solve meets NaN or infinite values (names the step and time).
    """
    _check_inputs(sde, score_fn, x, "x")
    solver = ProbabilityFlowODE(method, rtol, atol)
    times = solver.plan(sde, eps, steps=None if solver.adaptive else steps).flip(0)
    with torch.no_grad():
        z, _ = integrate(solver, sde, CountingScore(score_fn), x, times)
    return z


def decode(
    sde: SDE,
    score_fn: ScoreFn,
    z: Tensor,
    *,
    method: str = "dopri5",
    steps: int = 100,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    eps: float = 1e-3,
) -> Tensor:
    """Latent -> data: the probability-flow ODE from T down to eps (``scoresde.sample`` with ``solver="ode"``).

    Args:
        sde, score_fn, method, steps, rtol, atol, eps: As for :func:`encode`.
        z: Latents (B, *event_shape) at time T.

    Returns:
        The data x(eps), shape of z; no denoising step, so that ``decode(encode(x)) ~ x``.
    """
    _check_inputs(sde, score_fn, z, "z")
    solver = ProbabilityFlowODE(method, rtol, atol)
    x, _ = sample(sde, score_fn, None, start=z, solver=solver, eps=eps, denoise=False,
                  steps=None if solver.adaptive else steps)  # fmt: skip
    return x


def interpolate(z0: Tensor, z1: Tensor, weights: Sequence[float] | Tensor, *, spherical: bool = True) -> Tensor:
    """Points between latents z0 and z1 (each (B, *event_shape)), one per weight w in [0, 1] (w = 0: z0, 1: z1).

    Spherical (slerp): z = sin((1 - w) theta) / sin(theta) z0 + sin(w theta) / sin(theta) z1 per sample, with
    theta the angle between z0 and z1 (linear where they are parallel). For i.i.d. Gaussian latents the norm
    concentrates near sqrt(d) s(T); slerp keeps it there, where the linear path's midpoint falls short by ~1/sqrt(2).

    Args:
        z0, z1: Latents of one shape (B, *event_shape).
        weights: K weights in [0, 1].
        spherical: Slerp (default) or the straight line (1 - w) z0 + w z1.

    Returns:
        The path, shape (K, B, *event_shape).
    """
    if not isinstance(z0, Tensor) or not isinstance(z1, Tensor) or z0.shape != z1.shape or z0.ndim < 1:
        raise ValueError("z0 and z1 must be tensors of one shape (B, *event_shape)")
    w = torch.as_tensor(weights, dtype=torch.float64).reshape(-1)
    if w.numel() == 0 or not bool(((w >= 0) & (w <= 1)).all()):
        raise ValueError(f"weights must be numbers in [0, 1], got {w.tolist()}")
    a, b = z0.reshape(z0.shape[0], -1).double(), z1.reshape(z1.shape[0], -1).double()
    w = w[:, None, None]
    if spherical:
        cos = ((a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1)).clamp_min(1e-300)).clamp(-1, 1)
        theta = torch.arccos(cos)[None, :, None]
        sin = torch.sin(theta)
        parallel = sin.abs() < 1e-7
        safe = torch.where(parallel, torch.ones_like(sin), sin)
        c0 = torch.where(parallel, 1 - w, torch.sin((1 - w) * theta) / safe)
        c1 = torch.where(parallel, w, torch.sin(w * theta) / safe)
    else:
        c0, c1 = 1 - w, w
    out = c0 * a[None] + c1 * b[None]
    return out.to(z0.dtype).reshape(len(out), *z0.shape)
