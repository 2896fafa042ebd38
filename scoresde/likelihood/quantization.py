"""Discrete data levels, uniform dequantisation and the bits-per-dimension summary.

Convention (shared by every dataset, ``scoresde.data.from_levels``): level k in {0, ..., K-1} is stored as the
model value lo + (hi - lo) k / (K - 1), so the extreme levels are exactly lo and hi. Dequantisation puts level k
into the bin

    B_k = [lo + (hi - lo) k / K,  lo + (hi - lo) (k + 1) / K)      (per coordinate, width w = (hi - lo) / K)

as y = lo + (hi - lo) (k + u) / K with u ~ U[0, 1)^D. The K bins tile [lo, hi) exactly; the model value of
level k lies in B_k, but off centre (at the lower edge for k = 0, the upper edge for k = K - 1).

``centred=True`` instead centres each bin on its model value, with the level spacing s = (hi - lo) / (K - 1)
as width: y = lo + s (k + u - 1/2), bins tiling [lo - s/2, hi + s/2). Any fixed partition into disjoint bins
turns a density into a valid discrete model, so both give upper bounds on -log2 P(k) / D; the centred one
matches what a model trained on the stored values has seen (docs/guides/likelihood.md), while the default follows
the convention of the reference implementation.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from torch import Tensor

from .._utils import check_finite
from .._validation import check_int


class Quantization:
    """K equally spaced levels on data_range = (lo, hi) and their dequantisation bins.

    Args:
        levels: Number of levels K >= 2 (256 for 8-bit images, 17 for sklearn's digits).
        data_range: (lo, hi) with lo < hi, the model range of the data.
        centred: Bins of width (hi - lo) / (K - 1) centred on the model values, instead of the K bins of
            width (hi - lo) / K tiling [lo, hi).
        grid_tol: Largest accepted distance of a value from its level, as a fraction of the level spacing.
    """

    def __init__(
        self,
        levels: int,
        data_range: tuple[float, float] = (-1.0, 1.0),
        *,
        centred: bool = False,
        grid_tol: float = 0.01,
    ):
        check_int("levels", levels, 2)  # the number of discrete values
        try:
            lo, hi = (float(v) for v in data_range)
        except (TypeError, ValueError) as err:
            raise ValueError(f"data_range must be a pair (lo, hi) of numbers, got {data_range!r}") from err
        if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
            raise ValueError(f"data_range must be finite with lo < hi, got {data_range!r}")
        self.levels, self.lo, self.hi, self.grid_tol = levels, lo, hi, float(grid_tol)
        self.centred = bool(centred)

    def __repr__(self) -> str:
        return f"Quantization(levels={self.levels}, data_range=({self.lo}, {self.hi}), centred={self.centred})"

    @property
    def bin_width(self) -> float:
        """Width w of a dequantisation bin along one coordinate: (hi - lo) / K, or (hi - lo) / (K - 1) if centred."""
        return (self.hi - self.lo) / (self.levels - 1 if self.centred else self.levels)

    def to_levels(self, x: Tensor) -> Tensor:
        """Invert the data convention: k = round((x - lo) / (hi - lo) * (K - 1)), a LongTensor of x's shape.

        Raises:
            ValueError: if x is not finite, lies outside data_range, or is off the level grid.
        """
        check_finite(x, "x")
        lo, hi = float(x.min()), float(x.max())
        spacing = (self.hi - self.lo) / (self.levels - 1)
        if lo < self.lo - self.grid_tol * spacing or hi > self.hi + self.grid_tol * spacing:
            raise ValueError(
                f"x must lie in data_range=({self.lo}, {self.hi}), got values in [{lo:.6g}, {hi:.6g}]; "
                "pass the data_range the data was scaled to"
            )
        scaled = (x.double() - self.lo) / spacing
        k = scaled.round()
        off = float((scaled - k).abs().max())
        if off > self.grid_tol:
            raise ValueError(
                f"x is not on the grid of levels={self.levels} in data_range=({self.lo}, {self.hi}): a value lies "
                f"{off:.3g} level spacings from the nearest level; pass the levels and data_range of the dataset"
            )
        return k.long()

    def dequantize(self, k: Tensor, u: Tensor) -> Tensor:
        """y = lo + w (k + u), or lo + w (k + u - 1/2) if centred, for levels k and u in [0, 1) (float64)."""
        if k.shape != u.shape:
            raise ValueError(f"k and u must have the same shape, got {tuple(k.shape)} and {tuple(u.shape)}")
        return self.lo + (k.double() + u.double() - (0.5 if self.centred else 0.0)) * self.bin_width

    def log_bin_volume(self, dim: int) -> float:
        """log of the volume w^D of one D-dimensional dequantisation bin: D log w."""
        return dim * math.log(self.bin_width)


@dataclass
class BitsPerDim:
    """A per-dimension negative log-likelihood over a set of examples (bits/dim, or nats/dim where stated).

    Attributes:
        per_sample: Value for each example, shape (N,).
        mean: Mean over the examples.
        stderr: Standard error of the mean, std(per_sample) / sqrt(N) (NaN for N = 1).
        nfe: Score evaluations spent (0 for the baselines).
        wall_time: Seconds.
        per_sample_iw: Importance-weighted bound -log2 (mean_j p(y_j) w^D) / D over the dequantisation draws,
            shape (N,); equal to ``per_sample`` when n_dequant = 1; None where not applicable.
    """

    per_sample: Tensor
    mean: float
    stderr: float
    nfe: int = 0
    wall_time: float = 0.0
    per_sample_iw: Tensor | None = None

    @classmethod
    def from_values(cls, per_sample: Tensor, **kwargs) -> BitsPerDim:
        """Summarise per-example values (shape (N,)) as mean and standard error."""
        values = per_sample.detach().double().cpu()
        n = values.numel()
        if n == 0:
            raise ValueError("cannot summarise an empty set of examples")
        stderr = float(values.std() / math.sqrt(n)) if n > 1 else float("nan")
        return cls(per_sample=values, mean=float(values.mean()), stderr=stderr, **kwargs)

    @property
    def mean_iw(self) -> float | None:
        """Mean of the importance-weighted bound, or None."""
        return None if self.per_sample_iw is None else float(self.per_sample_iw.mean())

    def __str__(self) -> str:
        return f"{self.mean:.4f} ± {self.stderr:.4f}"
