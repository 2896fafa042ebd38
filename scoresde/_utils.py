"""Small tensor helpers shared across the package: broadcasting, time handling, input checks."""

from __future__ import annotations

import math

import torch
from torch import Tensor


def append_dims(v: Tensor, ndim: int) -> Tensor:
    """Append trailing singleton dims to ``v`` until it has ``ndim`` dims.

    This is the one place where per-sample quantities of shape (B,) are broadcast against data of
    shape (B, *event_shape); no other code hard-codes ``[:, None, None, None]``.

    Args:
        v: Tensor of shape (B,) (or any shape with at most ``ndim`` dims).
        ndim: Target number of dims, usually ``x.ndim``.

    Returns:
        A view of ``v`` with shape (B, 1, ..., 1).
    """
    extra = ndim - v.ndim
    if extra < 0:
        raise ValueError(f"cannot append dims: tensor has {v.ndim} dims, more than the target {ndim}")
    return v.reshape(*v.shape, *([1] * extra))


def batch_time(t: float | Tensor, x: Tensor, *, name: str = "t") -> Tensor:
    """Turn ``t`` (a Python number, a 0-d tensor or a (B,) tensor) into a (B,) tensor like ``x``.

    Raises:
        ValueError: if ``t`` is not a scalar or a 1-D tensor of length ``x.shape[0]``.
    """
    if x.ndim < 1:
        raise ValueError(f"x must have a batch dimension, got a tensor of shape {tuple(x.shape)}")
    batch = x.shape[0]
    if isinstance(t, (int, float)):
        return torch.full((batch,), float(t), dtype=x.dtype, device=x.device)
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a float or a tensor, got {type(t).__name__}")
    if t.ndim == 0:
        t = t.expand(batch)
    elif t.ndim != 1 or t.shape[0] != batch:
        raise ValueError(
            f"{name} must be a scalar or have shape ({batch},) to match the batch of x "
            f"(x has shape {tuple(x.shape)}), got shape {tuple(t.shape)}"
        )
    return t.to(dtype=x.dtype, device=x.device)


def check_time_range(t: float | Tensor, lo: float, hi: float, *, name: str = "t") -> None:
    """Raise ``ValueError`` unless every entry of ``t`` lies in [lo, hi] (with a tiny tolerance).

    Python numbers and CPU tensors are checked. Tensors on an accelerator are not: reading their values
    would synchronise the host with the device on every coefficient call (in every solver step and every
    score evaluation). The user-facing entry points (``sample``, ``log_likelihood``, the losses) validate
    their own time arguments as Python numbers, so only hand-built accelerator time tensors go unchecked.
    """
    tol = 1e-6 * max(1.0, abs(hi))
    if isinstance(t, Tensor):
        if t.numel() == 0 or t.device.type != "cpu":
            return
        t_min, t_max = float(t.min()), float(t.max())
    else:
        t_min = t_max = float(t)
    if not (math.isfinite(t_min) and math.isfinite(t_max)) or t_min < lo - tol or t_max > hi + tol:
        raise ValueError(f"{name} must lie in [{lo}, {hi}], got values in [{t_min}, {t_max}]")


def check_finite(x: Tensor, name: str) -> None:
    """Raise ``ValueError`` if ``x`` holds NaN or infinite entries."""
    if not bool(torch.isfinite(x).all()):
        bad = int((~torch.isfinite(x)).sum())
        raise ValueError(f"{name} has {bad} non-finite entries (NaN or inf) out of {x.numel()}")


def sum_except_batch(x: Tensor) -> Tensor:
    """Sum over every dim but the first: (B, ...) -> (B,)."""
    return x.reshape(x.shape[0], -1).sum(dim=1)


def event_size(x: Tensor) -> int:
    """Number of entries per sample (the dimension D of the data)."""
    return int(math.prod(x.shape[1:]))
