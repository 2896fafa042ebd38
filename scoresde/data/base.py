"""The dataset container every loader returns, and the discrete-level convention.

Discrete data with K levels: level k in {0, ..., K-1} is the model value

    x = lo + (hi - lo) k / (K - 1),        (lo, hi) = data_range, default (-1, 1),

so the extreme levels are exactly lo and hi. Bits/dim code inverts this with rounding
(:func:`to_levels`) and dequantises uniformly inside a level's bin as lo + (hi - lo)(k + u)/K
(:func:`dequantize`), u ~ U[0, 1).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .._utils import append_dims
from .._validation import check_choice, check_int

_SPLITS = ("train", "test")


def _check_range(data_range: tuple[float, float]) -> tuple[float, float]:
    lo, hi = (float(v) for v in data_range)
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"data_range must be two finite numbers lo < hi, got {data_range!r}")
    return lo, hi


def from_levels(k: Tensor, levels: int, data_range: tuple[float, float] = (-1.0, 1.0)) -> Tensor:
    """Levels k in {0..K-1} -> float32 model values lo + (hi - lo) k / (K - 1), computed in float64 and rounded.

    Integer tensors go through a K-entry lookup table (fast for large uint8 image arrays) and must lie in
    {0..K-1}; float tensors are mapped by the formula.
    """
    levels = check_int("levels", levels, 2)
    lo, hi = _check_range(data_range)
    if k.is_floating_point():
        return (lo + (hi - lo) * k.to(torch.float64) / (levels - 1)).to(torch.float32)
    if k.numel() and (int(k.min()) < 0 or int(k.max()) >= levels):
        raise ValueError(f"levels must lie in 0..{levels - 1}, got values in [{int(k.min())}, {int(k.max())}]")
    table = (lo + (hi - lo) * torch.arange(levels, dtype=torch.float64) / (levels - 1)).to(torch.float32)
    return table.to(k.device)[k.int()]


def to_levels(x: Tensor, levels: int, data_range: tuple[float, float] = (-1.0, 1.0)) -> Tensor:
    """Model values -> nearest level, a LongTensor clamped to {0..K-1}; the inverse of :func:`from_levels`."""
    levels = check_int("levels", levels, 2)
    lo, hi = _check_range(data_range)
    k = torch.round((x.to(torch.float64) - lo) / (hi - lo) * (levels - 1))
    return k.clamp(0, levels - 1).long()


def dequantize(
    k: Tensor, u: Tensor, levels: int, data_range: tuple[float, float] = (-1.0, 1.0), *, centred: bool = False
) -> Tensor:
    """Uniform dequantisation lo + (hi - lo)(k + u) / K of levels k with u in [0, 1), same shape as k; ``centred``:
    lo + (hi - lo)(k + u - 1/2) / (K - 1), the bins centred on the stored values."""
    levels = check_int("levels", levels, 2)
    lo, hi = _check_range(data_range)
    if centred:
        return lo + (hi - lo) * (k.to(u.dtype) + u - 0.5) / (levels - 1)
    return lo + (hi - lo) * (k.to(u.dtype) + u) / levels


def max_pairwise_distance(x: Tensor, max_points: int | None = None, seed: int = 0, chunk: int = 1024) -> float:
    """Largest Euclidean distance between two rows of x, shape (N, ...), flattened per row.

    Song & Ermon (2020, technique 1) take sigma_max of a VE SDE about this large; the conf/data YAMLs state it.
    With ``max_points`` only that many random rows (seeded) are compared, which can only underestimate.
    """
    flat = x.reshape(x.shape[0], -1).to(torch.float64)
    if max_points is not None and flat.shape[0] > max_points:
        idx = torch.randperm(flat.shape[0], generator=torch.Generator().manual_seed(seed))[:max_points]
        flat = flat[idx]
    best = 0.0
    for start in range(0, flat.shape[0], chunk):
        best = max(best, float(torch.cdist(flat[start : start + chunk], flat).max()))
    return best


@dataclass
class ArrayDataset:
    """A dataset held in memory as tensors in the model range.

    Attributes:
        name: Short name, e.g. ``"digits"``.
        train: Training data, float32, shape (N, *event_shape).
        test: Test data, float32, shape (M, *event_shape).
        train_labels: LongTensor (N,) of class labels, or None.
        test_labels: LongTensor (M,) of class labels, or None.
        levels: Number of discrete levels K of the raw data (17 for digits, 256 for 8-bit images);
            None for continuous data.
        data_range: (lo, hi): where the extreme levels sit (discrete data), or the bounding box of the
            training data (continuous data, for plots).
        num_classes: Number of classes, or None without labels.
        train_transform: Optional random augmentation ``transform(x, generator=None) -> x`` for a training
            batch of shape (B, *event_shape) (e.g. :class:`RandomHorizontalFlip` for CIFAR-10); the trainer
            applies it per batch. None: no augmentation.
        oracle: The analytic distribution (``scoresde.oracle.Gaussian`` / ``GaussianMixture``) the data were
            drawn from, when there is one (exact scores and log-densities); otherwise None.
    """

    name: str
    train: Tensor
    test: Tensor
    train_labels: Tensor | None = None
    test_labels: Tensor | None = None
    levels: int | None = None
    data_range: tuple[float, float] = (-1.0, 1.0)
    num_classes: int | None = None
    train_transform: Any = field(default=None, repr=False)
    oracle: Any = field(default=None, repr=False)

    def __post_init__(self) -> None:
        for split in _SPLITS:
            x = getattr(self, split)
            if not isinstance(x, Tensor) or x.ndim < 2 or x.dtype != torch.float32:
                raise TypeError(f"{split} must be a float32 tensor of shape (N, *event_shape)")
        if self.train.shape[1:] != self.test.shape[1:]:
            raise ValueError(f"train and test event shapes differ: {self.train.shape[1:]} vs {self.test.shape[1:]}")
        for split in _SPLITS:
            labels = getattr(self, f"{split}_labels")
            if labels is not None and (labels.dtype != torch.long or labels.shape != (getattr(self, split).shape[0],)):
                raise ValueError(f"{split}_labels must be a LongTensor with one entry per {split} sample")
        if self.levels is not None:
            check_int("levels", self.levels, 2)
        self.data_range = _check_range(self.data_range)

    @property
    def event_shape(self) -> tuple[int, ...]:
        """Shape of one sample, e.g. (1, 8, 8) or (2,)."""
        return tuple(self.train.shape[1:])

    def split(self, name: str) -> Tensor:
        """The ``"train"`` or ``"test"`` tensor."""
        check_choice("split name", name, _SPLITS)
        return getattr(self, name)

    def labels(self, name: str) -> Tensor | None:
        """The labels of the ``"train"`` or ``"test"`` split (None when unlabelled)."""
        self.split(name)
        return getattr(self, f"{name}_labels")

    def to_levels(self, x: Tensor) -> Tensor:
        """Model values -> LongTensor levels (rounded, clamped); only for discrete data."""
        if self.levels is None:
            raise ValueError(f"dataset {self.name!r} is continuous (levels=None); it has no discrete levels")
        return to_levels(x, self.levels, self.data_range)

    def from_levels(self, k: Tensor) -> Tensor:
        """Levels -> model values; only for discrete data."""
        if self.levels is None:
            raise ValueError(f"dataset {self.name!r} is continuous (levels=None); it has no discrete levels")
        return from_levels(k, self.levels, self.data_range)


class RandomHorizontalFlip:
    """Flip each image of a batch (B, C, H, W) left-right with probability p."""

    def __init__(self, p: float = 0.5) -> None:
        if not 0 <= p <= 1:
            raise ValueError(f"p must lie in [0, 1], got {p}")
        self.p = float(p)

    def __repr__(self) -> str:
        return f"RandomHorizontalFlip(p={self.p})"

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        if x.ndim != 4:
            raise ValueError(f"RandomHorizontalFlip expects images of shape (B, C, H, W), got {tuple(x.shape)}")
        flip = torch.rand(x.shape[0], generator=generator, device=generator.device if generator else x.device)
        flip = (flip < self.p).to(x.device)
        return torch.where(append_dims(flip, x.ndim), x.flip(-1), x)


class UniformDequantization:
    """Replace every value of a batch of discrete data by a uniform draw inside its level's bin.

    Level k, stored at lo + (hi - lo) k / (K - 1), becomes lo + (hi - lo)(k + u - 1/2) / (K - 1) with u ~ U[0, 1)
    per value: the bins of width (hi - lo) / (K - 1) *centred* on the stored values, which
    :func:`scoresde.bits_per_dim` integrates over with ``centred_bins=True`` (the CLI's evaluation of a model trained
    this way does so). A continuous density trained on these draws models the distribution the bits/dim bound
    measures, so its bound approaches -log2 P(k) / D; one trained on the discrete values themselves spends its mass
    on spikes the bound never sees (Theis, van den Oord & Bethge 2016, sec. 3.1; Ho et al. 2019, Flow++, sec. 3.1;
    Song, Durkan, Murray & Ermon 2021, sec. 6). Centred bins keep samples in data coordinates: rounding them with
    :func:`to_levels` recovers the level (with the K bins tiling [lo, hi) instead, a sample sits up to half a level
    away from its stored value; the digits FID this costs: docs/guides/training.md).

    Args:
        levels: Number of levels K >= 2 of the data.
        data_range: (lo, hi) of the model values.
    """

    def __init__(self, levels: int, data_range: tuple[float, float] = (-1.0, 1.0)) -> None:
        self.levels = check_int("levels", levels, 2)
        self.data_range = _check_range(data_range)

    def __repr__(self) -> str:
        return f"UniformDequantization(levels={self.levels}, data_range={self.data_range})"

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """x: (B, ...) values on the level grid -> dequantised values of the same shape and dtype."""
        k = to_levels(x, self.levels, self.data_range)
        device = generator.device if generator is not None else x.device
        u = torch.rand(x.shape, generator=generator, dtype=torch.float64, device=device).to(x.device)
        return dequantize(k, u, self.levels, self.data_range, centred=True).to(x.dtype)


class Chain:
    """Apply several batch transforms ``transform(x, generator=None) -> x`` in order."""

    def __init__(self, *transforms: Any) -> None:
        self.transforms = transforms

    def __repr__(self) -> str:
        return f"Chain({', '.join(map(repr, self.transforms))})"

    def __call__(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        for transform in self.transforms:
            x = transform(x, generator=generator)
        return x


def seeded_split(n: int, n_test: int, seed: int) -> tuple[Tensor, Tensor]:
    """A fixed random partition of range(n) into (train indices, test indices) of sizes n - n_test and n_test."""
    if not 0 < n_test < n:
        raise ValueError(f"n_test must lie in (0, {n}), got {n_test}")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    return perm[n_test:].sort().values, perm[:n_test].sort().values
