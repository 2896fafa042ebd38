"""Noise sources for the stochastic samplers: the run's generator, or per-sample streams keyed by (seed, index).

A sampler asks its :class:`~.base.StepContext` for noise in two ways: ``ctx.noise(x)``, a fresh standard normal
draw (Langevin correctors, EDM's churn), and ``ctx.increment(x, i)``, the normalised Brownian increment
(W(t_i) - W(t_{i+1})) / sqrt(t_i - t_{i+1}) of grid interval i (the noise of Euler-Maruyama, reverse diffusion,
ancestral sampling, DPM-Solver++ SDE). With the default :class:`GeneratorNoise` both are independent draws from the
run's ``torch.Generator``: the noise of a sample depends on its position in the batch and on the batch size.

:class:`BrownianNoise` gives every sample its own Brownian path W_b(t), keyed by (seed, b): a *virtual Brownian
tree* (Gaines & Lyons 1997; Li et al. 2020, torchsde's BrownianTree) on float64 times, whose node values are
Gaussians computed from a counter-based hash of (seed, b, node, coordinate) rather than drawn from a stateful
generator. So W_b does not depend on the rest of the batch, nor on which times are queried: a sample keeps its
path when the step count, the grid or its batch changes, and increments over any intervals are exactly jointly
Gaussian with the Brownian covariance (up to the tree's resolution, 2^-depth of the time span, where the path is
interpolated linearly). :func:`keyed_normal` is the hash-based N(0, 1) generator both use.
"""

from __future__ import annotations

import abc
import math

import torch
from torch import Tensor

from .._validation import check_int, is_int

_MASK = 0xFFFFFFFF


def _mul32(x: Tensor, c: int) -> Tensor:
    """(x * c) mod 2^32 for x in [0, 2^32) held in int64, without int64 overflow (16-bit halves)."""
    lo, hi = x & 0xFFFF, x >> 16
    return (lo * c + (((hi * c) & 0xFFFF) << 16)) & _MASK


def _mix32(x: Tensor) -> Tensor:
    """A 32-bit integer hash with full avalanche (C. Wellons' "lowbias32"), on int64 tensors in [0, 2^32)."""
    x = x ^ (x >> 16)
    x = _mul32(x, 0x7FEB352D)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x846CA68B)
    return x ^ (x >> 16)


def hash_words(*words: Tensor | int) -> Tensor:
    """Hash a sequence of (broadcastable) 32-bit words into one 32-bit word."""
    h = torch.tensor(0x9E3779B9, dtype=torch.int64)
    for w in words:
        w = torch.as_tensor(w, dtype=torch.int64, device=h.device if not isinstance(w, Tensor) else w.device)
        h = _mix32(h.to(w.device) ^ _mix32(w & _MASK))
    return h


def keyed_normal(key: Tensor, shape: tuple[int, ...], dtype: torch.dtype, device: torch.device) -> Tensor:
    """Standard normals of shape (B, *shape) that are a pure function of the (B,) 32-bit ``key`` and the coordinate.

    Box-Muller on two hashed 32-bit uniforms per coordinate: a counter-based generator, so entry (b, j) never
    depends on any other row. Tails are cut at |z| = 6.7 (u >= 2^-33), which N(0, 1) exceeds with probability 2e-11.
    """
    n = math.prod(shape)
    j = torch.arange(n, dtype=torch.int64, device=device)
    base = _mix32(key.to(device=device, dtype=torch.int64)[:, None] ^ _mix32(j)[None, :])
    u1 = (_mix32(base ^ 0x68E31DA4).double() + 0.5) / 2.0**32
    u2 = (_mix32(base ^ 0x1B56C4E9).double() + 0.5) / 2.0**32
    z = torch.sqrt(-2 * torch.log(u1)) * torch.cos(2 * math.pi * u2)
    return z.reshape(key.shape[0], *shape).to(dtype)


class NoiseSource(abc.ABC):
    """Where a run's noise comes from: fresh normals and Brownian increments of shape (B, *event_shape)."""

    @abc.abstractmethod
    def normal(self, like: Tensor, index: Tensor | None = None) -> Tensor:
        """A fresh N(0, I) draw of ``like``'s shape; ``index`` (B,) selects the samples' streams where keyed."""

    @abc.abstractmethod
    def increment(self, like: Tensor, t_from: Tensor, t_to: Tensor, index: Tensor | None = None) -> Tensor:
        """(W(t_from) - W(t_to)) / sqrt(|t_from - t_to|) per sample; t_from, t_to of shape (B,) (float64)."""


class GeneratorNoise(NoiseSource):
    """Independent draws from a ``torch.Generator`` (the default; increments of disjoint intervals are independent)."""

    def __init__(self, generator: torch.Generator | None) -> None:
        self.generator = generator

    def normal(self, like: Tensor, index: Tensor | None = None) -> Tensor:
        return torch.randn(like.shape, generator=self.generator, dtype=like.dtype, device=like.device)

    def increment(self, like: Tensor, t_from: Tensor, t_to: Tensor, index: Tensor | None = None) -> Tensor:
        return self.normal(like)


class BrownianNoise(NoiseSource):
    """A Brownian path per sample keyed by (seed, sample index), as a virtual Brownian tree on [t_lo, t_hi].

    Args:
        seed: Integer seed of the paths (any Python int; 64 bits are used).
        t_lo: Start of the time span (the sampler's eps; queries are clamped into the span).
        t_hi: End of the span (the SDE's T).
        depth: Levels of the tree; the path is linear below (t_hi - t_lo) 2^-depth.
        offset: Added to every sample index: row b of a batch is sample ``offset + b`` (a chunk of a larger run,
            e.g. :func:`scoresde.distributed.sample_sharded`, keys its rows by their index in the whole run).
    """

    def __init__(self, seed: int, t_lo: float = 0.0, t_hi: float = 1.0, depth: int = 24, offset: int = 0) -> None:
        if not is_int(seed):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        if not t_lo < t_hi:
            raise ValueError(f"the time span must have t_lo < t_hi, got [{t_lo}, {t_hi}]")
        if not is_int(depth) or not 1 <= depth <= 30:
            raise ValueError(f"depth must be an integer in [1, 30], got {depth!r}")
        check_int("offset", offset, 0)
        self.seed, self.t_lo, self.t_hi, self.depth, self.offset = seed, float(t_lo), float(t_hi), depth, offset
        self._calls = 0
        self._last: tuple[Tensor, Tensor, Tensor] | None = None  # (t, index, W(t)) of the latest query

    def _sample_key(self, index: Tensor, stream: int) -> Tensor:
        s = self.seed & ((1 << 64) - 1)
        return hash_words(s & _MASK, s >> 32, stream, index + self.offset)

    def _node_key(self, index: Tensor, node: Tensor, stream: int) -> Tensor:
        return _mix32(self._sample_key(index, stream) ^ _mix32(node))

    def path(self, like: Tensor, t: Tensor, index: Tensor) -> Tensor:
        """W_b(t_b) for every sample b, shape of ``like``; t (B,) float64, W(t_lo) = 0."""
        shape, dev = tuple(like.shape[1:]), like.device
        t = t.to(device=dev, dtype=torch.float64).clamp(self.t_lo, self.t_hi)
        batch = like.shape[0]
        a = torch.full((batch,), self.t_lo, dtype=torch.float64, device=dev)
        b = torch.full((batch,), self.t_hi, dtype=torch.float64, device=dev)
        node = torch.ones(batch, dtype=torch.int64, device=dev)
        w_a = torch.zeros(batch, *shape, dtype=torch.float64, device=dev)
        root = keyed_normal(self._node_key(index, node, 0), shape, torch.float64, dev)
        w_b = math.sqrt(self.t_hi - self.t_lo) * root
        view = (batch,) + (1,) * len(shape)
        key = self._sample_key(index, 1)
        for _ in range(self.depth):
            c = 0.5 * (a + b)
            z = keyed_normal(_mix32(key ^ _mix32(node)), shape, torch.float64, dev)
            w_c = 0.5 * (w_a + w_b) + (0.5 * (b - a).sqrt()).reshape(view) * z  # bridge: Var = (b - a) / 4
            left = (t <= c).reshape(view)
            w_a, w_b = torch.where(left, w_a, w_c), torch.where(left, w_c, w_b)
            go_left = t <= c
            a, b = torch.where(go_left, a, c), torch.where(go_left, c, b)
            node = 2 * node + (~go_left).long()
        frac = ((t - a) / (b - a)).reshape(view)
        return (w_a + frac * (w_b - w_a)).to(like.dtype)

    def _index(self, like: Tensor, index: Tensor | None) -> Tensor:
        return torch.arange(like.shape[0], device=like.device) if index is None else index.to(like.device)

    def increment(self, like: Tensor, t_from: Tensor, t_to: Tensor, index: Tensor | None = None) -> Tensor:
        index = self._index(like, index)
        t_from, t_to = (torch.as_tensor(v, dtype=torch.float64).expand(like.shape[0]) for v in (t_from, t_to))
        last = self._last
        if (
            last is not None
            and last[0].shape == t_from.shape
            and torch.equal(last[0], t_from)
            and torch.equal(last[1], index)
        ):
            w_from = last[
                2
            ]  # a fixed grid queries each time twice, as the end of one interval and the start of the next
        else:
            w_from = self.path(like, t_from, index)
        w_to = self.path(like, t_to, index)
        self._last = (t_to, index, w_to)
        dw = w_from - w_to
        scale = (t_from - t_to).abs().clamp_min(1e-300).sqrt().to(device=like.device, dtype=like.dtype)
        return dw / scale.reshape(-1, *([1] * (like.ndim - 1)))

    def normal(self, like: Tensor, index: Tensor | None = None) -> Tensor:
        """A fresh draw keyed by (seed, index, call count): batch-independent, not step-count independent."""
        index = self._index(like, index)
        self._calls += 1
        return keyed_normal(self._node_key(index, torch.zeros_like(index), 2 + self._calls), tuple(like.shape[1:]),
                            like.dtype, like.device)  # fmt: skip


class KeyedNoise(NoiseSource):
    """Independent N(0, I) draws per sample, keyed by (seed, offset + row, draw count): batch-free and cheap.

    Every call (a fresh normal or a grid interval's increment) is an independent standard normal for each sample,
    a pure function of the seed, the sample's index in the whole run and how many draws came before, so a sample's
    noise does not depend on its batch, as long as the solver makes the same calls whatever the batch (every
    fixed-grid solver does). Unlike :class:`BrownianNoise` it is not a path: a different step count gives
    different noise. It costs one hash per coordinate per draw (a Brownian tree query costs 2 x depth of them).

    Args:
        seed: Integer seed (64 bits are used).
        offset: Index of the batch's first row in the whole run.
    """

    def __init__(self, seed: int, offset: int = 0) -> None:
        if not is_int(seed):
            raise TypeError(f"seed must be an int, got {type(seed).__name__}")
        self.seed, self.offset, self._calls = seed, check_int("offset", offset, 0), 0

    def normal(self, like: Tensor, index: Tensor | None = None) -> Tensor:
        index = torch.arange(like.shape[0], device=like.device) if index is None else index.to(like.device)
        s, self._calls = self.seed & ((1 << 64) - 1), self._calls + 1
        key = hash_words(s & _MASK, s >> 32, self._calls, index + self.offset)
        return keyed_normal(key, tuple(like.shape[1:]), like.dtype, like.device)

    def increment(self, like: Tensor, t_from: Tensor, t_to: Tensor, index: Tensor | None = None) -> Tensor:
        return self.normal(like, index)
