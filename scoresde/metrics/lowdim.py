"""Sample metrics in data space for 2-D and other low-dimensional data, and exact NLL for the oracles.

* Fréchet distance of the raw coordinates (:func:`scoresde.metrics.frechet_distance` on the data itself);
* MMD^2 with a Gaussian RBF kernel k(x, y) = exp(-||x - y||^2 / (2 h^2)), unbiased (Gretton et al., 2012, eq. 3),
  summed over several bandwidths h;
* the sliced 2-Wasserstein distance SW_2^2 = E_theta W_2^2(theta.x, theta.y) over directions theta uniform on
  the sphere (Rabin et al., 2011), each 1-D W_2 computed exactly from quantiles;
* for :mod:`scoresde.oracle` distributions, the exact negative log-likelihood E[-log p(x)] of the samples,
  whose value on true samples is the entropy of the distribution.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .._validation import check_int
from .frechet import as_numpy_2d, frechet_distance, gaussian_stats
from .kid import mmd2_unbiased

DEFAULT_BANDWIDTHS = (0.1, 0.2, 0.5, 1.0, 2.0)


@dataclass(frozen=True)
class RBFKernel:
    """Sum of Gaussian kernels sum_h exp(-||x - y||^2 / (2 h^2)) over the bandwidths h."""

    bandwidths: Sequence[float] = DEFAULT_BANDWIDTHS

    def __post_init__(self):
        if len(self.bandwidths) == 0 or min(self.bandwidths) <= 0:
            raise ValueError(f"bandwidths must be a non-empty list of positive numbers, got {self.bandwidths}")

    def __call__(self, x: np.ndarray, y: np.ndarray) -> np.ndarray:
        """Gram matrix between x (N, D) and y (M, D), shape (N, M)."""
        sq = (x**2).sum(1)[:, None] + (y**2).sum(1)[None, :] - 2.0 * x @ y.T
        sq = np.maximum(sq, 0.0)
        return sum(np.exp(-sq / (2.0 * h**2)) for h in self.bandwidths)


def mmd_rbf(x, y, *, bandwidths: Sequence[float] = DEFAULT_BANDWIDTHS, max_points: int = 2000, seed: int = 0) -> float:
    """Unbiased MMD^2 between two sample sets with a (multi-bandwidth) RBF kernel.

    Args:
        x: Samples, shape (N, D) or (N, *event_shape).
        y: Samples, shape (M, D).
        bandwidths: Kernel bandwidths h (in data units); the kernels are summed.
        max_points: Sets larger than this are randomly subsampled to bound the O(N^2) memory.
        seed: Seed of that subsampling.

    Returns:
        MMD^2 as a float (can be slightly negative: the estimator is unbiased).
    """
    x, y = as_numpy_2d(x, "x"), as_numpy_2d(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have one dimension, got shapes {x.shape} and {y.shape}")
    rng = np.random.default_rng(seed)
    x = x if x.shape[0] <= max_points else x[rng.choice(x.shape[0], max_points, replace=False)]
    y = y if y.shape[0] <= max_points else y[rng.choice(y.shape[0], max_points, replace=False)]
    kernel = RBFKernel(tuple(bandwidths))
    return mmd2_unbiased(kernel(x, x), kernel(y, y), kernel(x, y))


def sliced_wasserstein(x, y, *, num_projections: int = 256, seed: int = 0) -> float:
    """Sliced squared 2-Wasserstein distance SW_2^2 between two sample sets.

    Each 1-D distance is computed exactly between the empirical distributions of the projections (by sorting
    when the sets have one size, by the quantile functions on the common grid of both sizes otherwise).

    Args:
        x: Samples, shape (N, D) or (N, *event_shape).
        y: Samples, shape (M, D).
        num_projections: Number of random directions theta.
        seed: Seed of the directions.

    Returns:
        The Monte-Carlo estimate of E_theta W_2^2 (in squared data units).
    """
    x, y = as_numpy_2d(x, "x"), as_numpy_2d(y, "y")
    if x.shape[1] != y.shape[1]:
        raise ValueError(f"x and y must have one dimension, got shapes {x.shape} and {y.shape}")
    check_int("num_projections", num_projections)
    theta = np.random.default_rng(seed).standard_normal((x.shape[1], num_projections))
    theta /= np.linalg.norm(theta, axis=0, keepdims=True)
    px, py = x @ theta, y @ theta
    if px.shape[0] == py.shape[0]:
        return float(((np.sort(px, 0) - np.sort(py, 0)) ** 2).mean())
    # W_2^2 = int_0^1 (F^-1(u) - G^-1(u))^2 du; both quantile functions are steps on the merged grid.
    cuts = np.union1d(np.arange(1, px.shape[0]) / px.shape[0], np.arange(1, py.shape[0]) / py.shape[0])
    edges = np.concatenate([[0.0], cuts, [1.0]])
    mids, widths = 0.5 * (edges[1:] + edges[:-1]), np.diff(edges)
    qx = np.sort(px, 0)[np.minimum((mids * px.shape[0]).astype(int), px.shape[0] - 1)]
    qy = np.sort(py, 0)[np.minimum((mids * py.shape[0]).astype(int), py.shape[0] - 1)]
    return float((widths[:, None] * (qx - qy) ** 2).sum(0).mean())


def coordinate_frechet(x, y) -> float:
    """Fréchet distance between Gaussians fitted to the raw coordinates of two sample sets."""
    a, b = gaussian_stats(x), gaussian_stats(y)
    return frechet_distance(a.mu, a.sigma, b.mu, b.sigma)


def oracle_nll(distribution, samples) -> float:
    """Mean exact negative log-likelihood -E log p(x) of samples under an oracle distribution (nats per sample).

    Args:
        distribution: Anything with ``log_prob(x) -> (B,)``, e.g. :class:`scoresde.oracle.Gaussian` or
            :class:`scoresde.oracle.GaussianMixture`.
        samples: Tensor of shape (B, *event_shape).
    """
    if not isinstance(samples, torch.Tensor):
        samples = torch.as_tensor(np.asarray(samples))
    logp = distribution.log_prob(samples.to(torch.float64))
    if not bool(torch.isfinite(logp).all()):
        raise ValueError("log_prob returned non-finite values for some samples")
    return float(-logp.mean())


@dataclass(frozen=True)
class LowDimMetrics:
    """Data-space metrics of a sample set against a reference set (see the module docstring).

    Attributes:
        frechet: Fréchet distance of the raw coordinates.
        mmd: Unbiased RBF MMD^2.
        sliced_w2: Sliced squared 2-Wasserstein distance.
        nll: Mean exact NLL of the samples under the oracle, or None without an oracle.
    """

    frechet: float
    mmd: float
    sliced_w2: float
    nll: float | None = None


def lowdim_metrics(samples, reference, *, oracle=None, seed: int = 0) -> LowDimMetrics:
    """All data-space metrics of ``samples`` (N, D) against ``reference`` (M, D); NLL if ``oracle`` is given."""
    return LowDimMetrics(
        frechet=coordinate_frechet(samples, reference),
        mmd=mmd_rbf(samples, reference, seed=seed),
        sliced_w2=sliced_wasserstein(samples, reference, seed=seed),
        nll=None if oracle is None else oracle_nll(oracle, samples),
    )
