"""Shared statistics for the solver tests: Frechet distance to exact moments and its sampling noise floor."""

from __future__ import annotations

import torch
from torch import Tensor

import scoresde
from scoresde.oracle import Gaussian, GaussianMixture, gaussian_mean_cov


def sqrtm_psd(a: Tensor) -> Tensor:
    """Symmetric square root of a positive semi-definite matrix (float64)."""
    w, v = torch.linalg.eigh(0.5 * (a + a.T))
    return (v * w.clamp_min(0).sqrt()) @ v.T


def frechet(mu1: Tensor, cov1: Tensor, mu2: Tensor, cov2: Tensor) -> float:
    """||mu1 - mu2||^2 + tr(C1 + C2 - 2 (C1^1/2 C2 C1^1/2)^1/2): the FID formula, here in data space."""
    r1 = sqrtm_psd(cov1)
    cross = sqrtm_psd(r1 @ cov2 @ r1)
    return float((mu1 - mu2).pow(2).sum() + torch.trace(cov1 + cov2 - 2 * cross))


def moments(x: Tensor) -> tuple[Tensor, Tensor]:
    """Sample mean (D,) and covariance (D, D) of x (B, ...) in float64."""
    x = x.reshape(x.shape[0], -1).double()
    return x.mean(0), torch.atleast_2d(torch.cov(x.T))


def fd_to(x: Tensor, target: Gaussian) -> float:
    """Frechet distance between the moments of the samples x and the exact Gaussian target."""
    return frechet(*moments(x), *gaussian_mean_cov(target))


def noise_floor(target: Gaussian, n: int, reps: int = 8, seed: int = 1234) -> float:
    """Mean Frechet distance of n exact samples of ``target`` to its own moments: what sampling noise alone gives."""
    gen = torch.Generator().manual_seed(seed)
    return sum(fd_to(target.sample(n, generator=gen, dtype=torch.float64), target) for _ in range(reps)) / reps


def marginal_mixture(mix: GaussianMixture, sde: scoresde.SDE, t: float) -> GaussianMixture:
    """The noised marginal of a mixture at time t (a mixture of the noised components)."""
    return GaussianMixture([c.marginal(sde, t) for c in mix.components], mix.weights)


def tweedie_target(data: Gaussian, sde: scoresde.SDE, t: float) -> Gaussian:
    """Law of Tweedie's E[x_0 | x_t] for x_t ~ p_t of a Gaussian: N(mu, Sigma (Sigma + sigma^2 I)^-1 Sigma)."""
    mu, cov = gaussian_mean_cov(data)
    sigma2 = float(sde.sigma(t)) ** 2
    k = torch.linalg.solve(cov + sigma2 * torch.eye(len(mu), dtype=torch.float64), cov)
    out = cov @ k
    return Gaussian(mu.reshape(data.event_shape), cov=0.5 * (out + out.T))
