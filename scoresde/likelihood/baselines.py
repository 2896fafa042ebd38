"""Two simple density models that put a score model's bits/dim in context.

* :class:`PixelCategorical`: every coordinate is an independent categorical over the K levels, fitted as the
  add-one (Laplace) smoothed histogram of that coordinate over the training split. Exactly discrete, so its
  bits/dim is -log2 P(k) / D with no dequantisation bound.
* :class:`GaussianBaseline`: a full-covariance Gaussian fitted by maximum likelihood to the (uniformly
  dequantised, for discrete data) training split, scored like the score model: bits/dim
  -(E_u log N(y; mu, Sigma) + D log w) / (D ln 2), the same bound as :func:`scoresde.bits_per_dim`.
  On continuous data it gives nats/dim -log N(x; mu, Sigma) / D.

A score model that does not beat both has not learned more than per-pixel marginals and pairwise correlations.
"""

from __future__ import annotations

import math
import time

import torch
from torch import Tensor

from .._utils import check_finite
from .._validation import check_int
from .quantization import BitsPerDim, Quantization

_LOG2 = math.log(2.0)


def _flat(x: Tensor, name: str) -> Tensor:
    if not isinstance(x, Tensor) or x.ndim < 2 or x.shape[0] == 0:
        raise ValueError(f"{name} must be a tensor of shape (N, *event_shape) with N >= 1")
    return x.reshape(x.shape[0], -1)


class PixelCategorical:
    """Independent per-coordinate categorical distributions over K levels (add-one smoothed histograms).

    Args:
        log_probs: Log-probabilities of shape (D, K); rows sum to one in probability.
        quantization: The levels and data range the model values are read with.
    """

    def __init__(self, log_probs: Tensor, quantization: Quantization) -> None:
        if log_probs.ndim != 2 or log_probs.shape[1] != quantization.levels:
            raise ValueError(f"log_probs must have shape (D, {quantization.levels}), got {tuple(log_probs.shape)}")
        self.log_probs, self.quantization = log_probs.double(), quantization

    @classmethod
    def fit(cls, train: Tensor, quantization: Quantization, *, alpha: float = 1.0) -> PixelCategorical:
        """P(k_i = j) = (count_ij + alpha) / (N + alpha K) over the training examples (alpha = 1: add-one)."""
        k = _flat(quantization.to_levels(train), "train")
        counts = torch.zeros(k.shape[1], quantization.levels, dtype=torch.float64)
        counts.scatter_add_(1, k.T, torch.ones(k.T.shape, dtype=torch.float64))
        probs = (counts + alpha) / (k.shape[0] + alpha * quantization.levels)
        return cls(probs.log(), quantization)

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact log P(k) in nats of discrete data x (model values), shape (N,)."""
        k = _flat(self.quantization.to_levels(x), "x")
        if k.shape[1] != self.log_probs.shape[0]:
            raise ValueError(f"x has {k.shape[1]} coordinates per example, the model {self.log_probs.shape[0]}")
        return self.log_probs.gather(1, k.T).sum(0)

    def bits_per_dim(self, x: Tensor) -> BitsPerDim:
        """-log2 P(k) / D per example, with mean and standard error."""
        start = time.perf_counter()
        values = -self.log_prob(x) / (self.log_probs.shape[0] * _LOG2)
        return BitsPerDim.from_values(values, wall_time=time.perf_counter() - start)


class GaussianBaseline:
    """A full-covariance Gaussian N(mu, Sigma) over the flattened event, in the model's data space.

    Args:
        mean: Shape (D,).
        cov: Shape (D, D), symmetric positive definite.
        quantization: Levels of discrete data (dequantised before fitting and scoring), or None for continuous data.
    """

    def __init__(self, mean: Tensor, cov: Tensor, quantization: Quantization | None = None) -> None:
        self.dist = torch.distributions.MultivariateNormal(mean.double(), covariance_matrix=cov.double())
        self.quantization = quantization

    @classmethod
    def fit(
        cls,
        train: Tensor,
        quantization: Quantization | None = None,
        *,
        generator: torch.Generator | None = None,
        ridge: float = 1e-6,
        diagonal: bool = False,
    ) -> GaussianBaseline:
        """Maximum-likelihood mean and covariance of the (dequantised) training data.

        Args:
            train: Training split, shape (N, *event_shape), model values.
            quantization: Levels of discrete data, or None for continuous data.
            generator: Random source of the dequantisation noise.
            ridge: Added to the diagonal as a fraction of the mean variance (guards degenerate continuous data;
                dequantisation alone already makes discrete data's covariance positive definite).
            diagonal: Fit only the per-dimension variances (what :func:`fit_baselines` uses when N <= D, where the
                full covariance is singular up to the dequantisation noise and its likelihoods meaningless).
        """
        y = _flat(cls._dequantize(train, quantization, generator), "train")
        mean = y.mean(0)
        centred = y - mean
        cov = centred.T @ centred / y.shape[0] if not diagonal else torch.diag(centred.pow(2).mean(0))
        cov = cov + ridge * float(cov.diagonal().mean()) * torch.eye(cov.shape[0], dtype=cov.dtype)
        return cls(mean, cov, quantization)

    @staticmethod
    def _dequantize(x: Tensor, quantization: Quantization | None, generator: torch.Generator | None) -> Tensor:
        if quantization is None:
            check_finite(x, "x")
            return x.double()
        k = quantization.to_levels(x)
        return quantization.dequantize(k, torch.rand(k.shape, generator=generator, dtype=torch.float64))

    def log_prob(self, y: Tensor) -> Tensor:
        """log N(y; mu, Sigma) in nats for continuous (or already dequantised) y, shape (N,)."""
        return self.dist.log_prob(_flat(y, "y").double())

    def nats_per_dim(self, x: Tensor) -> BitsPerDim:
        """-log N(x; mu, Sigma) / D per example for continuous data (the summary's unit is nats/dim)."""
        start = time.perf_counter()
        values = -self.log_prob(x) / self.dist.event_shape[0]
        return BitsPerDim.from_values(values, wall_time=time.perf_counter() - start)

    def bits_per_dim(self, x: Tensor, *, n_dequant: int = 1, generator: torch.Generator | None = None) -> BitsPerDim:
        """-(E_u log N(y; mu, Sigma) + D log w) / (D ln 2) per example of discrete x, averaged over n_dequant draws."""
        if self.quantization is None:
            raise ValueError("bits_per_dim needs discrete data: fit with a Quantization (or use nats_per_dim)")
        check_int("n_dequant", n_dequant)
        start = time.perf_counter()
        dim = self.dist.event_shape[0]
        logp = torch.stack([self.log_prob(self._dequantize(x, self.quantization, generator)) for _ in range(n_dequant)])
        values = -(logp.mean(0) + self.quantization.log_bin_volume(dim)) / (dim * _LOG2)
        return BitsPerDim.from_values(values, wall_time=time.perf_counter() - start)


def fit_baselines(
    train: Tensor,
    x: Tensor,
    levels: int | None,
    data_range: tuple[float, float] = (-1.0, 1.0),
    n_dequant: int = 1,
    seed: int = 0,
    *,
    centred_bins: bool = False,
) -> dict[str, BitsPerDim]:
    """Both baselines fitted to ``train`` and scored on ``x``: bits/dim for discrete data, nats/dim otherwise.

    Discrete data (``levels`` given) get the per-pixel categorical and the dequantised full-covariance Gaussian;
    continuous data only the Gaussian. ``seed`` seeds the dequantisation noise. With no more training examples
    than dimensions (N <= D) the full covariance is singular and its likelihoods are meaningless (a 20-image
    folder of 3x32x32 images scored 145,994 bits/dim): a diagonal Gaussian takes its place, and its name says why.
    """
    gen = torch.Generator().manual_seed(seed)
    train, x = train.cpu(), x.cpu()
    n, dim = train.shape[0], train[0].numel()
    diagonal = n <= dim
    name = (
        f"gaussian (diagonal: full covariance singular with {n} examples <= {dim} dims)"
        if diagonal
        else ("gaussian (full covariance)")
    )
    if levels is None:
        return {name: GaussianBaseline.fit(train, diagonal=diagonal).nats_per_dim(x)}
    quant = Quantization(levels, data_range, centred=centred_bins)
    gauss = GaussianBaseline.fit(train, quant, generator=gen, diagonal=diagonal)
    return {
        "per-pixel categorical": PixelCategorical.fit(train, quant).bits_per_dim(x),
        name: gauss.bits_per_dim(x, n_dequant=n_dequant, generator=gen),
    }
