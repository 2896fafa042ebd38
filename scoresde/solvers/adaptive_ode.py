"""A batched Dormand-Prince RK5(4) integrator with a step size and a time PER SAMPLE.

torchdiffeq solves a batch as one ODE: one step-size sequence, set by the hardest sample, so every sample pays
for it. Here each sample b keeps its own time t_b, step h_b and FSAL derivative; every iteration evaluates the
right-hand side only on the samples still running (at their own times), accepts or rejects each sample's step by
its own error, and retires a sample when it reaches the end. A sample's result therefore depends only on itself
(up to the round-off of a batched right-hand side), and the batch costs the SUM of its samples' evaluations rather
than the batch size times the hardest sample's (in calls: the number of attempts of the slowest sample).

The method is Dormand & Prince (1980), the tableau of torchdiffeq's "dopri5", with the standard embedded 4th-order
error estimate, FSAL (the last stage of an accepted step is the first of the next: 6 evaluations per attempt),
Hairer's initial step-size selection (Hairer, Norsett & Wanner, "Solving ODEs I", II.4; one extra evaluation) and
the step-size update h <- h min(10, max(0.2, 0.9 err^(-1/5))) (no growth after a rejection, no shrinking after an
acceptance, as torchdiffeq). The error of sample b is max over the state's components of the RMS of
err / (atol + rtol max(|y_old|, |y_new|)) over that component's coordinates.

torchode (Lienen & Guennemann 2022) also gives every sample its own step size, but evaluates the right-hand side on
the whole batch at every call until the slowest sample ends, so it computes more score rows on batches of mixed
difficulty (benchmarks/per_sample_ode.py; docs/guides/likelihood.md).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

State = tuple[Tensor, ...]
RHS = Callable[[Tensor, State, Tensor], State]
"""``f(t, y, idx)``: t (b,) float64 times, y the states of the samples ``idx`` (b,) of the batch; returns dy/dt."""

_C = (0.0, 1 / 5, 3 / 10, 4 / 5, 8 / 9, 1.0, 1.0)
_A = (
    (),
    (1 / 5,),
    (3 / 40, 9 / 40),
    (44 / 45, -56 / 15, 32 / 9),
    (19372 / 6561, -25360 / 2187, 64448 / 6561, -212 / 729),
    (9017 / 3168, -355 / 33, 46732 / 5247, 49 / 176, -5103 / 18656),
    (35 / 384, 0.0, 500 / 1113, 125 / 192, -2187 / 6784, 11 / 84),
)
_E = (71 / 57600, 0.0, -71 / 16695, 71 / 1920, -17253 / 339200, 22 / 525, -1 / 40)  # b5 - b4


@dataclass
class AdaptiveResult:
    """The state at the end time and what the solve cost.

    Attributes:
        y: The state at t1, a tuple of tensors of shape (B, ...) (NaN for the samples of a non-finite stop).
        nfe_per_sample: Right-hand-side evaluations of each sample, shape (B,), int64.
        rejected: Rejected attempts, summed over samples.
        finite: False if an attempt's error estimate was NaN or infinite (a right-hand side that broke): the solve
            stopped there, the state of the samples that met it is NaN, and the caller raises.
    """

    y: State
    nfe_per_sample: Tensor
    rejected: int
    finite: bool = True


def _bcast(v: Tensor, like: Tensor) -> Tensor:
    return v.to(like.dtype).reshape(-1, *([1] * (like.ndim - 1)))


def _norm(err: State, scale: State) -> Tensor:
    """Per-sample max over components of the RMS of err / scale, shape (b,), float64."""
    rms = [(e / s).reshape(e.shape[0], -1).double().pow(2).mean(1).sqrt() for e, s in zip(err, scale, strict=True)]
    return torch.stack(rms).amax(0)


def _combine(y: State | None, h: Tensor, coefs: tuple[float, ...], ks: list[State]) -> State:
    """y + h sum_j a_j k_j per component (y None: from zero), one fused multiply-add per term."""
    out = []
    for c_i, k0 in enumerate(ks[0]):
        hb = _bcast(h, k0)
        acc = None if y is None else y[c_i]
        for a, k in zip(coefs, ks, strict=False):
            if a:
                acc = hb * k[c_i] * a if acc is None else torch.addcmul(acc, hb, k[c_i], value=a)
        out.append(acc)
    return tuple(out)


def dopri5_per_sample(f: RHS, y0: State, t0: float, t1: float, *, rtol: float, atol: float) -> AdaptiveResult:
    """Integrate dy/dt = f(t, y) from t0 to t1 (either direction) with a Dormand-Prince step size per sample.

    Args:
        f: The right-hand side ``f(t, y, idx)`` (see :data:`RHS`).
        y0: Initial state at t0, a tuple of tensors with a common batch size B.
        t0: Start time.
        t1: End time (every sample lands on it exactly).
        rtol: Relative tolerance.
        atol: Absolute tolerance.

    Returns:
        An :class:`AdaptiveResult`.
    """
    batch, dev = y0[0].shape[0], y0[0].device
    sign = 1.0 if t1 >= t0 else -1.0
    span = abs(t1 - t0)
    rejected = 0
    nfe = torch.zeros(batch, dtype=torch.int64, device=dev)
    every = torch.arange(batch, device=dev)
    t = torch.full((batch,), float(t0), dtype=torch.float64, device=dev)
    y = tuple(c.clone() for c in y0)
    k1 = f(t, y, every)
    # Hairer's initial step: h0 from |y| / |f|, refined by one probe of the second derivative
    scale = tuple(atol + rtol * c.abs() for c in y)
    d0, d1 = _norm(y, scale), _norm(k1, scale)
    h0 = torch.where((d0 < 1e-5) | (d1 < 1e-5), torch.full_like(d0, 1e-6), 0.01 * d0 / d1.clamp_min(1e-300))
    h0 = h0.clamp(max=span)
    probe = _combine(y, sign * h0, (1.0,), [k1])
    k_probe = f(t + sign * h0, probe, every)
    nfe = nfe + 2
    d2 = _norm(tuple(a - b for a, b in zip(k_probe, k1, strict=True)), scale) / h0
    big = torch.maximum(d1, d2)
    h1 = torch.where(big <= 1e-15, (h0 * 1e-3).clamp_min(1e-6), (0.01 / big.clamp_min(1e-300)) ** (1 / 5))
    h = torch.minimum(100 * h0, h1)
    running = every
    while running.numel():
        idx = running
        tt, remaining = t[idx], (t1 - t[idx]).abs()
        hh = torch.minimum(h[idx], remaining)
        last = hh >= remaining
        yy = tuple(c[idx] for c in y)
        ks = [tuple(k[idx] for k in k1)]
        for j in range(1, 7):
            yj = _combine(yy, sign * hh, _A[j], ks)
            tj = torch.where(last, torch.full_like(tt, t1), tt + sign * hh) if j >= 5 else tt + sign * _C[j] * hh
            ks.append(f(tj, yj, idx))
        y_new = yj  # the 7th stage's input is the 5th-order solution (FSAL)
        nfe[idx] = nfe[idx] + 6
        err = _combine(None, sign * hh, _E, ks)
        scale = tuple(atol + rtol * torch.maximum(a.abs(), b.abs()) for a, b in zip(yy, y_new, strict=True))
        ratio = _norm(err, scale)
        finite = torch.isfinite(ratio)
        if not bool(finite.all()):  # stop: the state of the samples that met non-finite values becomes NaN
            y = tuple(c.index_fill(0, idx[~finite], float("nan")) for c in y)
            return AdaptiveResult(y, nfe, rejected, finite=False)
        accept = ratio <= 1
        done = idx[accept]
        t[done] = torch.where(last, torch.full_like(tt, t1), tt + sign * hh)[accept]
        y = tuple(c.index_put((done,), n[accept]) for c, n in zip(y, y_new, strict=True))
        k1 = tuple(c.index_put((done,), n[accept]) for c, n in zip(k1, ks[6], strict=True))
        rejected += int((~accept).sum())
        factor = (ratio.clamp_min(1e-300) ** (1 / 5) / 0.9).clamp(0.1, 5.0)
        factor = torch.where(accept, factor.clamp(max=1.0), factor.clamp(min=1.0))
        h[idx] = hh / factor
        if bool((h[idx] < 1e-14 * max(span, 1.0)).any()):
            raise FloatingPointError("step size underflow in dopri5_per_sample")
        running = idx[~(accept & last)]
    return AdaptiveResult(y, nfe, rejected)
