"""Distances d(a, b) >= 0 of the consistency losses, per sample: (B, *event_shape) x 2 -> (B,)."""

from __future__ import annotations

import math

from torch import Tensor

from .._utils import sum_except_batch
from .._validation import check_positive


class SquaredL2:
    """d(a, b) = ||a - b||^2 / dim, the mean squared error (Song et al. 2023's l2 metric, per dimension)."""

    def __call__(self, a: Tensor, b: Tensor) -> Tensor:
        return sum_except_batch((a - b) ** 2) / a[0].numel()

    def __repr__(self) -> str:
        return "SquaredL2()"


class PseudoHuber:
    """d(a, b) = sqrt(||a - b||^2 + c^2) - c (Song & Dhariwal 2023, eq. 7) with c = 0.00054 sqrt(dim) by default.

    Args:
        c: The transition scale; None: 0.00054 sqrt(dim), iCT's choice for data in [-1, 1].
    """

    def __init__(self, c: float | None = None) -> None:
        self.c = check_positive("c", c, or_none=True)

    def __call__(self, a: Tensor, b: Tensor) -> Tensor:
        c = self.c if self.c is not None else 0.00054 * math.sqrt(a[0].numel())
        return (sum_except_batch((a - b) ** 2) + c**2).sqrt() - c

    def __repr__(self) -> str:
        return f"PseudoHuber(c={self.c})"


DISTANCES = {"l2": SquaredL2, "pseudo_huber": PseudoHuber}
"""Distance classes by the name the objectives' ``distance`` argument accepts."""


def make_distance(distance: str | object) -> object:
    """A distance object from a name in :data:`DISTANCES`, or a callable ``d(a, b) -> (B,)`` itself."""
    if isinstance(distance, str) and distance in DISTANCES:
        return DISTANCES[distance]()
    if callable(distance):
        return distance
    raise ValueError(f"distance must be one of {sorted(DISTANCES)} or a callable, got {distance!r}")
