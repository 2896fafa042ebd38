"""Time grids: where the steps of a sampler fall, as functions independent of every solver.

Each function returns the times T = t_0 > t_1 > ... > t_N = eps as a float64 tensor of shape (N + 1,).
Grids defined on the noise level sigma(t) = s(t) / m(t) (or on lambda = -log sigma) are mapped to times with
:meth:`SDE.t_from_sigma`, so they serve every SDE. ``GRIDS`` names the grids every solver accepts as its
``grid`` option; :func:`make` builds one by name.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from .._validation import is_int, is_real
from ..sde import SDE


def check_steps_eps(sde: SDE, steps: int, eps: float) -> tuple[int, float]:
    """Validate a step count (integer >= 1) and an end time eps in (0, T); return them."""
    if not is_int(steps) or steps < 1:
        raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
    if not is_real(eps):
        raise TypeError(f"eps must be a float in (0, T) = (0, {sde.T}), got {type(eps).__name__}")
    eps = float(eps)
    if not (math.isfinite(eps) and 0.0 < eps < sde.T):
        raise ValueError(f"eps must lie in (0, T) = (0, {sde.T}), got {eps}")
    return steps, eps


def uniform(sde: SDE, steps: int, eps: float) -> Tensor:
    """Uniform in time: t_i = T - i (T - eps) / N (Song et al. 2021, all samplers of the paper)."""
    steps, eps = check_steps_eps(sde, steps, eps)
    return torch.linspace(sde.T, eps, steps + 1, dtype=torch.float64)


def _from_sigmas(sde: SDE, sigmas: Tensor, eps: float) -> Tensor:
    t = sde.t_from_sigma(sigmas).clamp(eps, sde.T)
    t[0], t[-1] = sde.T, eps  # pin the ends exactly against round-off of the inverse
    return t


def geometric_sigma(sde: SDE, steps: int, eps: float) -> Tensor:
    """Geometric in the noise level between sigma(T) and sigma(eps), as NCSN's levels (Song & Ermon 2019)."""
    steps, eps = check_steps_eps(sde, steps, eps)
    lo, hi = math.log(float(sde.sigma(eps))), math.log(float(sde.sigma(sde.T)))
    return _from_sigmas(sde, torch.linspace(hi, lo, steps + 1, dtype=torch.float64).exp(), eps)


def karras(sde: SDE, steps: int, eps: float, rho: float = 7.0) -> Tensor:
    """EDM's grid (Karras et al. 2022, eq. 5): sigma_i^(1/rho) uniform between sigma(T) and sigma(eps)."""
    steps, eps = check_steps_eps(sde, steps, eps)
    if not rho > 0:
        raise ValueError(f"rho must be positive, got {rho}")
    lo, hi = float(sde.sigma(eps)) ** (1 / rho), float(sde.sigma(sde.T)) ** (1 / rho)
    return _from_sigmas(sde, torch.linspace(hi, lo, steps + 1, dtype=torch.float64) ** rho, eps)


def uniform_log_snr(sde: SDE, steps: int, eps: float) -> Tensor:
    """Uniform in lambda = -log sigma, half the log signal-to-noise ratio (DPM-Solver, Lu et al. 2022, sec. 3.4)."""
    return geometric_sigma(sde, steps, eps)


def quadratic(sde: SDE, steps: int, eps: float) -> Tensor:
    """Quadratic in time: sqrt(t_i) uniform between sqrt(T) and sqrt(eps) (DPM-Solver's "time_quadratic")."""
    steps, eps = check_steps_eps(sde, steps, eps)
    return torch.linspace(math.sqrt(sde.T), math.sqrt(eps), steps + 1, dtype=torch.float64).square()


def logistic(
    sde: SDE, steps: int, eps: float, *, sigma_data: float = 1.0, width: float = 3.0, floor: float = 0.05
) -> Tensor:
    """Steps in lambda = -log sigma concentrated where the noise level is near the data's scale.

    The lambda_i are the quantiles i / N, on [lambda(T), lambda(eps)], of the density
    floor + sech^2((lambda - lambda_data) / width), lambda_data = -log sigma_data: a logistic bump around
    sigma = sigma_data on a uniform floor (whose CDF, floor lambda + width tanh(...), is inverted by bisection).
    Where sigma >> sigma_data the model output barely moves and where sigma << sigma_data little is left to
    resolve, so unit-scale data (images in [-1, 1], the oracle problems) needs most steps in between. UniPC takes
    it below 15 steps.
    """
    steps, eps = check_steps_eps(sde, steps, eps)
    for name, value in (("sigma_data", sigma_data), ("width", width), ("floor", floor)):
        if not (isinstance(value, (int, float)) and math.isfinite(value) and value > 0):
            raise ValueError(f"{name} must be a positive number, got {value!r}")
    lo, hi = -math.log(float(sde.sigma(sde.T))), -math.log(float(sde.sigma(eps)))
    c = -math.log(sigma_data)
    cdf = lambda lam: floor * lam + width * torch.tanh((lam - c) / width)  # noqa: E731 - increasing in lambda
    ends = cdf(torch.tensor([lo, hi], dtype=torch.float64))
    target = torch.lerp(ends[0], ends[1], torch.linspace(0, 1, steps + 1, dtype=torch.float64))
    a, b = torch.full_like(target, lo), torch.full_like(target, hi)
    for _ in range(100):  # bisection to float64 resolution
        mid = 0.5 * (a + b)
        below = cdf(mid) < target
        a, b = torch.where(below, mid, a), torch.where(below, b, mid)
    return _from_sigmas(sde, (-0.5 * (a + b)).exp(), eps)


MIXED_WIDE_BELOW = 8
"""``logistic_mixed`` keeps its lower floor and wider bump (0.35, 1.75) below this many steps."""


def logistic_mixed(sde: SDE, steps: int, eps: float) -> Tensor:
    """A logistic bump at sigma = 1 on a high uniform floor: ``logistic`` with floor 0.35 and width 1.75 below 8
    steps, floor 0.425 and width 1.625 from 8.

    Uniform-in-lambda steps resolve every scale of the data (a 64-D Gaussian with stds 0.1-1 needs them) and the
    bump spends the rest where unit-scale data changes most (a mixture's mode choice). DPMSolver takes it below 15
    steps. Chosen on a ladder of floors and widths on the six oracle problems at 6-20 NFE, on the x_T draws of seeds
    0 and 3 at n = 1000 (the largest ratio to the references' recommended settings, smallest; held out: seeds 1 and
    2; the two-problem benchmarks/fast_solvers.py of commit 4f4c307). These are fitted constants: how they hold on
    random problem families is in docs/guides/samplers.md. Below 8 steps the lower floor is kept because the
    higher one cost FID on the digits VE model at 5 NFE.
    """
    if steps < MIXED_WIDE_BELOW:
        return logistic(sde, steps, eps, width=1.75, floor=0.35)
    return logistic(sde, steps, eps, width=1.625, floor=0.425)


def logistic_narrow(sde: SDE, steps: int, eps: float) -> Tensor:
    """A narrow logistic bump at sigma = 1 on a low floor: ``logistic`` with width 1.5 and floor 0.2.

    DPMSolver takes it from 15 steps, where UniPC's default (the log-SNR grid) resolves the data's many scales and
    DPMSolver can spend its steps near the data's scale: on the VE oracle mixture at 20 NFE it is 0.79-0.94x the
    error of the best of the references' recommended settings (seeds 0-3, n = 1000), where ``logistic_mixed`` is
    1.02-1.11x. Width 1.5 rather than the slightly better 1.25 because width 1.0 is 1.2-1.5x (same ladder and seeds
    as ``logistic_mixed``).
    """
    return logistic(sde, steps, eps, width=1.5, floor=0.2)


GRIDS: dict[str, Callable[..., Tensor]] = {
    "uniform": uniform,
    "log_snr": uniform_log_snr,
    "quadratic": quadratic,
    "karras": karras,
    "logistic": logistic,
    "logistic_mixed": logistic_mixed,
    "logistic_narrow": logistic_narrow,
}
"""Grid names accepted by every solver's ``grid`` option; only "karras" uses ``rho`` ("logistic" takes its defaults)."""


def check_times(sde: SDE, times: Tensor, eps: float, *, intervals: int | None = None) -> Tensor:
    """Validate an explicit grid: a 1-D float tensor, strictly decreasing, inside [eps, T]; return it in float64.

    Args:
        sde: The SDE whose end time T bounds the grid.
        times: Grid times t_0 > t_1 > ... > t_N, shape (N + 1,), N >= 1.
        eps: The smallest time allowed.
        intervals: The number of intervals N the run's budget buys (None: any).

    Raises:
        TypeError: if ``times`` is not a floating-point tensor.
        ValueError: if it is not 1-D with at least two finite entries, not strictly decreasing, outside [eps, T], or
            of the wrong length for the budget.
    """
    if not isinstance(times, Tensor) or not times.is_floating_point():
        raise TypeError(f"times must be a floating-point tensor of shape (N + 1,), got {type(times).__name__}")
    t = times.detach().to(device="cpu", dtype=torch.float64)
    if t.ndim != 1 or len(t) < 2 or not bool(torch.isfinite(t).all()):
        raise ValueError(f"times must be a finite 1-D tensor of at least 2 times, got shape {tuple(times.shape)}")
    if not bool((t[1:] < t[:-1]).all()):
        i = int((t[1:] >= t[:-1]).nonzero()[0])
        raise ValueError(
            f"times must be strictly decreasing, but times[{i}]={t[i]:.6g} <= times[{i + 1}]={t[i + 1]:.6g}"
        )
    tol = 1e-12 * sde.T
    if float(t[0]) > sde.T + tol or float(t[-1]) < eps - tol:
        raise ValueError(f"times must lie in [eps, T] = [{eps}, {sde.T}], got [{float(t[-1]):.6g}, {float(t[0]):.6g}]")
    if intervals is not None and len(t) - 1 != intervals:
        raise ValueError(
            f"times has {len(t) - 1} intervals but the budget buys {intervals} (give {intervals + 1} times, or "
            "leave out steps and nfe to take the grid's own length)"
        )
    return t.clamp(eps, sde.T)


def check_name(grid: str) -> str:
    """Validate a grid name from ``GRIDS``; return it."""
    if not isinstance(grid, str) or grid not in GRIDS:
        raise ValueError(f"grid must be one of {sorted(GRIDS)} (or None for the solver's default), got {grid!r}")
    return grid


def make(grid: str, sde: SDE, steps: int, eps: float, rho: float = 7.0) -> Tensor:
    """The grid named ``grid`` (a key of ``GRIDS``) with ``steps`` intervals from T to eps; shape (steps + 1,)."""
    if check_name(grid) == "karras":
        return karras(sde, steps, eps, rho=rho)
    return GRIDS[grid](sde, steps, eps)
