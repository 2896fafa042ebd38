"""Kernel Inception Distance (Bińkowski et al., 2018): the unbiased MMD^2 with a polynomial kernel.

    k(x, y) = (gamma x.y + coef0)^degree,   gamma = 1 / D by default (D = feature dimension),

    MMD^2_u = 1/(m(m-1)) sum_{i != j} [k(x_i, x_j) + k(y_i, y_j)] - 2/m^2 sum_{i, j} k(x_i, y_j)    (their eq. 4)

is estimated on ``num_subsets`` random subsets of ``subset_size`` points drawn without replacement from each set;
the mean over subsets is the KID and the standard deviation over subsets its spread.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._validation import check_int
from .frechet import as_numpy_2d


@dataclass(frozen=True)
class KIDResult:
    """KID over subsets.

    Attributes:
        mean: Mean of the unbiased MMD^2 estimates over subsets.
        std: Standard deviation of the estimates over subsets (ddof=1; 0 for a single subset).
        subset_size: Points per subset actually used (capped by the smaller set).
        num_subsets: Number of subsets.
    """

    mean: float
    std: float
    subset_size: int
    num_subsets: int


@dataclass(frozen=True)
class PolynomialKernel:
    """k(x, y) = (gamma x.y + coef0)^degree; gamma=None means 1 / D.

    Args:
        degree: Polynomial degree (3 in KID).
        gamma: Scale of the inner product; None for 1 / D.
        coef0: Additive constant (1 in KID).
    """

    degree: int = 3
    gamma: float | None = None
    coef0: float = 1.0

    def __post_init__(self):
        check_int("degree", self.degree)

    def __call__(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Gram matrix between x (N, D) and y (M, D), shape (N, M)."""
        gamma = 1.0 / x.shape[1] if self.gamma is None else self.gamma
        base = gamma * (x @ y.T) + self.coef0
        out = base
        for _ in range(self.degree - 1):  # repeated products: several times faster than a float power
            out = out * base
        return out


def mmd2_unbiased(k_xx: np.ndarray, k_yy: np.ndarray, k_xy: np.ndarray) -> float:
    """Unbiased MMD^2 from the Gram matrices (Gretton et al., 2012, eq. 3); k_xx (m, m), k_yy (n, n), k_xy (m, n)."""
    m, n = k_xx.shape[0], k_yy.shape[0]
    if m < 2 or n < 2:
        raise ValueError(f"the unbiased MMD needs at least 2 points per set, got {m} and {n}")
    term_xx = (k_xx.sum() - np.trace(k_xx)) / (m * (m - 1))
    term_yy = (k_yy.sum() - np.trace(k_yy)) / (n * (n - 1))
    return float(term_xx + term_yy - 2.0 * k_xy.mean())


def kernel_inception_distance(
    features_x,
    features_y,
    *,
    num_subsets: int = 100,
    subset_size: int = 1000,
    kernel: PolynomialKernel | None = None,
    seed: int = 0,
) -> KIDResult:
    """KID between two feature sets (the polynomial-kernel unbiased MMD^2, averaged over subsets).

    Args:
        features_x: Features of the first set, shape (N, D).
        features_y: Features of the second set, shape (M, D).
        num_subsets: Number of random subsets (>= 1).
        subset_size: Points per subset from each set; capped at min(N, M).
        kernel: The kernel; the KID default (degree 3, gamma 1/D, coef0 1) if None.
        seed: Seed of the subset draws (the result is deterministic given the inputs).

    Returns:
        :class:`KIDResult` with the mean and standard deviation over subsets.
    """
    x, y = as_numpy_2d(features_x, "features_x"), as_numpy_2d(features_y, "features_y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"features_x and features_y must have one feature dimension, got {x.shape} and {y.shape}")
    check_int("num_subsets", num_subsets)
    check_int("subset_size", subset_size, 2)
    kernel = PolynomialKernel() if kernel is None else kernel
    m = min(subset_size, x.shape[0], y.shape[0])
    rng = np.random.default_rng(seed)
    estimates = np.empty(num_subsets)
    for i in range(num_subsets):
        xs = x[rng.choice(x.shape[0], m, replace=False)]
        ys = y[rng.choice(y.shape[0], m, replace=False)]
        estimates[i] = mmd2_unbiased(kernel(xs, xs), kernel(ys, ys), kernel(xs, ys))
    std = float(estimates.std(ddof=1)) if num_subsets > 1 else 0.0
    return KIDResult(mean=float(estimates.mean()), std=std, subset_size=m, num_subsets=num_subsets)
