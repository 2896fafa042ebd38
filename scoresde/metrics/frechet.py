"""Fréchet distance between Gaussians fitted to features: the FID of Heusel et al. (2017), eq. (6).

    d^2 = ||mu_1 - mu_2||^2 + tr(Sigma_1 + Sigma_2 - 2 (Sigma_1 Sigma_2)^{1/2})

is the squared 2-Wasserstein distance between N(mu_1, Sigma_1) and N(mu_2, Sigma_2). The matrix square root of
the (non-symmetric) product is taken with ``scipy.linalg.sqrtm`` as in the established FID code; when the product
is near-singular (the square root is not finite or does not square back to the product) ``eps * I`` is added to
both covariances, and the imaginary residue that rounding leaves in the square root is bounded and discarded.
Everything is computed in float64 NumPy.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.linalg
import torch

# Relative size of the imaginary part of diag((Sigma_1 Sigma_2)^{1/2}) tolerated as rounding residue.
IMAG_TOL = 1e-3
# Relative residual ||S S - Sigma_1 Sigma_2||_F / ||Sigma_1 Sigma_2||_F above which the square root is redone.
SQRTM_RESIDUAL_TOL = 1e-5


@dataclass(frozen=True)
class GaussianStats:
    """Mean and covariance of a feature set.

    Attributes:
        mu: Mean, shape (D,), float64.
        sigma: Unbiased covariance, shape (D, D), float64.
        n: Number of feature vectors the statistics come from.
    """

    mu: np.ndarray
    sigma: np.ndarray
    n: int

    def save(self, path) -> None:
        """Write the statistics to an ``.npz`` file (keys mu, sigma, n)."""
        np.savez(path, mu=self.mu, sigma=self.sigma, n=self.n)

    @classmethod
    def load(cls, path) -> GaussianStats:
        """Read statistics written by :meth:`save` (or any ``.npz`` with keys mu and sigma)."""
        with np.load(path) as f:
            n = int(f["n"]) if "n" in f else -1
            return cls(mu=np.asarray(f["mu"], np.float64), sigma=np.asarray(f["sigma"], np.float64), n=n)


def as_numpy_2d(features, name: str = "features") -> np.ndarray:
    """Features as a float64 array of shape (N, D); a (N, *shape) input is flattened per sample."""
    if isinstance(features, torch.Tensor):
        features = features.detach().cpu().to(torch.float64).numpy()
    arr = np.asarray(features, dtype=np.float64)
    if arr.ndim < 2:
        raise ValueError(f"{name} must have shape (N, D) (or (N, *event_shape)), got shape {arr.shape}")
    arr = arr.reshape(arr.shape[0], -1)
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} has {int((~np.isfinite(arr)).sum())} non-finite entries (NaN or inf)")
    return arr


def gaussian_stats(features) -> GaussianStats:
    """Mean and unbiased covariance of a (N, D) feature set (N >= 2).

    Args:
        features: Array or tensor of shape (N, D) or (N, *event_shape).

    Returns:
        :class:`GaussianStats` with mu (D,) and sigma (D, D) in float64.
    """
    arr = as_numpy_2d(features)
    if arr.shape[0] < 2:
        raise ValueError(f"features needs at least 2 rows to estimate a covariance, got {arr.shape[0]}")
    return GaussianStats(mu=arr.mean(0), sigma=np.atleast_2d(np.cov(arr, rowvar=False)), n=arr.shape[0])


def _check_pair(mu1, sigma1, mu2, sigma2) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    mu1, mu2 = np.atleast_1d(np.asarray(mu1, np.float64)), np.atleast_1d(np.asarray(mu2, np.float64))
    sigma1, sigma2 = np.atleast_2d(np.asarray(sigma1, np.float64)), np.atleast_2d(np.asarray(sigma2, np.float64))
    d = mu1.shape[0]
    if mu1.shape != (d,) or mu2.shape != (d,):
        raise ValueError(f"mu1 and mu2 must be vectors of one length, got shapes {mu1.shape} and {mu2.shape}")
    if sigma1.shape != (d, d) or sigma2.shape != (d, d):
        raise ValueError(f"sigma1 and sigma2 must have shape ({d}, {d}), got {sigma1.shape} and {sigma2.shape}")
    for name, a in (("mu1", mu1), ("sigma1", sigma1), ("mu2", mu2), ("sigma2", sigma2)):
        if not np.isfinite(a).all():
            raise ValueError(f"{name} has non-finite entries")
    return mu1, sigma1, mu2, sigma2


def _sqrtm_residual(root: np.ndarray, product: np.ndarray) -> float:
    scale = max(np.linalg.norm(product), np.finfo(np.float64).tiny)
    return float(np.linalg.norm(root @ root - product) / scale)


def _sqrtm_product(sigma1: np.ndarray, sigma2: np.ndarray, eps: float) -> np.ndarray:
    """(Sigma_1 Sigma_2)^{1/2}, retried with eps * I on both diagonals when the product is near-singular."""
    product = sigma1 @ sigma2
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # scipy warns about singular products; the residual below decides
        root = scipy.linalg.sqrtm(product)
    if np.isfinite(root).all() and _sqrtm_residual(root, product) < SQRTM_RESIDUAL_TOL:
        return root
    offset = eps * np.eye(sigma1.shape[0])
    product = (sigma1 + offset) @ (sigma2 + offset)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        root = scipy.linalg.sqrtm(product)
    if not np.isfinite(root).all():
        raise ValueError(
            f"the square root of sigma1 @ sigma2 is not finite even with eps={eps} added to the diagonals; "
            "check the covariances (are they positive semi-definite?) or pass a larger eps"
        )
    return root


def frechet_distance(mu1, sigma1, mu2, sigma2, *, eps: float = 1e-6) -> float:
    """Squared Fréchet (2-Wasserstein) distance between N(mu1, sigma1) and N(mu2, sigma2) (FID, eq. 6).

    Args:
        mu1: Mean of the first Gaussian, shape (D,).
        sigma1: Covariance of the first Gaussian, shape (D, D), symmetric positive semi-definite.
        mu2: Mean of the second Gaussian, shape (D,).
        sigma2: Covariance of the second Gaussian, shape (D, D).
        eps: Added to both diagonals when the product of the covariances is near-singular.

    Returns:
        The distance as a Python float (>= 0 up to rounding).

    Raises:
        ValueError: on shape mismatch, non-finite input, or an imaginary residue in the square root larger
            than ``IMAG_TOL`` relative to its real part (the covariances are then not PSD or badly conditioned).
    """
    mu1, sigma1, mu2, sigma2 = _check_pair(mu1, sigma1, mu2, sigma2)
    if eps <= 0:
        raise ValueError(f"eps must be > 0, got {eps}")
    covmean = _sqrtm_product(sigma1, sigma2, eps)
    if np.iscomplexobj(covmean):
        diag = np.diagonal(covmean)
        residue = float(np.abs(diag.imag).max())
        scale = max(1.0, float(np.abs(diag.real).max()))
        if residue > IMAG_TOL * scale:
            raise ValueError(
                f"the square root of sigma1 @ sigma2 has an imaginary part of size {residue:.3g} (tolerance "
                f"{IMAG_TOL * scale:.3g}); the covariances are not positive semi-definite or far too ill-conditioned"
            )
        covmean = covmean.real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2.0 * np.trace(covmean))


def frechet_distance_from_stats(a: GaussianStats, b: GaussianStats, *, eps: float = 1e-6) -> float:
    """:func:`frechet_distance` between two :class:`GaussianStats`."""
    return frechet_distance(a.mu, a.sigma, b.mu, b.sigma, eps=eps)
