"""Analytic oracle: data distributions whose noised marginals are known exactly under every linear SDE.

For x_0 ~ N(mu, Sigma) and the kernel x_t = m(t) x_0 + s(t) z, the marginal is
p_t = N(m mu, m^2 Sigma + s^2 I). In the eigenbasis Sigma = U diag(lambda) U^T each coordinate
y_k = [U^T (x - m mu)]_k has variance v_k(t) = m(t)^2 lambda_k + s(t)^2, so

* the score is  grad log p_t(x) = -U (y / v),
* the probability-flow ODE (paper eq. 13) is solved exactly by y_k(t) = sqrt(v_k(t) / v_k(t')) y_k(t')
  (since dv/dt = 2 f v + g^2, the ODE dy/dt = (f + g^2 / (2v)) y integrates in closed form), and
* the log-determinant of that flow map is 1/2 sum_k log(v_k(t) / v_k(t')).

A Gaussian mixture has mixture marginals with the same component formulas and a softmax-weighted score.
Samplers, likelihoods and benchmarks are tested against these answers rather than against "it runs".
Parameters are stored in float64 and cast to the dtype and device of the data they meet.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from ._utils import append_dims, batch_time
from .sde import SDE, ScoreFn

_LOG_2PI = math.log(2 * math.pi)


def _as_f64(value: Tensor | float | Sequence[float], name: str) -> Tensor:
    out = torch.as_tensor(value, dtype=torch.float64)
    if not bool(torch.isfinite(out).all()):
        raise ValueError(f"{name} must be finite")
    return out


class Gaussian:
    """N(mean, cov) on an event shape, with exact noised marginals, scores and flow maps for any linear SDE.

    Args:
        mean: Mean, a tensor of the event shape, e.g. (D,) or (C, H, W).
        std: Per-coordinate standard deviation (scalar or the event shape); a diagonal covariance.
        cov: Full (D, D) covariance over the flattened event, symmetric positive definite.
            Give exactly one of ``std`` and ``cov``.
    """

    def __init__(self, mean: Tensor | Sequence[float], *, std: Tensor | float | None = None, cov: Tensor | None = None):
        self.mean = _as_f64(mean, "mean")
        if self.mean.ndim == 0:
            raise ValueError("mean must have at least one dimension (the event shape)")
        self.event_shape = tuple(self.mean.shape)
        self.dim = self.mean.numel()
        if (std is None) == (cov is None):
            raise ValueError("give exactly one of std= (diagonal) or cov= (full covariance)")
        if std is not None:
            std = _as_f64(std, "std")
            self.eigvals = torch.broadcast_to(std**2, self.event_shape).reshape(-1).clone()
            self.eigvecs: Tensor | None = None
        else:
            cov = _as_f64(cov, "cov")
            if cov.shape != (self.dim, self.dim):
                raise ValueError(f"cov must have shape ({self.dim}, {self.dim}), got {tuple(cov.shape)}")
            if not torch.allclose(cov, cov.T, atol=1e-10 * float(cov.abs().max())):
                raise ValueError("cov must be symmetric")
            self.eigvals, self.eigvecs = torch.linalg.eigh(cov)
        if not bool((self.eigvals > 0).all()):
            raise ValueError("the covariance must be positive definite (all std / eigenvalues > 0)")
        self._cache: dict[tuple, tuple[Tensor, Tensor, Tensor | None]] = {}

    def __repr__(self) -> str:
        kind = "diag" if self.eigvecs is None else "full"
        return f"Gaussian(event_shape={self.event_shape}, cov={kind})"

    # -------------------------------------------------------------------------- helpers
    def _params(self, like: Tensor) -> tuple[Tensor, Tensor, Tensor | None]:
        key = (like.dtype, like.device)
        if key not in self._cache:
            cast = lambda v: None if v is None else v.to(dtype=like.dtype, device=like.device)  # noqa: E731
            self._cache[key] = (cast(self.mean.reshape(-1)), cast(self.eigvals), cast(self.eigvecs))
        return self._cache[key]

    def _check(self, x: Tensor) -> Tensor:
        if tuple(x.shape[1:]) != self.event_shape:
            raise ValueError(f"x must have shape (B, {', '.join(map(str, self.event_shape))}), got {tuple(x.shape)}")
        return x.reshape(x.shape[0], -1)

    def _coords(self, x: Tensor, m: Tensor) -> Tensor:
        """y = U^T (x - m mu), flattened: (B, D)."""
        mu, _, U = self._params(x)
        y = self._check(x) - m[:, None] * mu
        return y if U is None else y @ U

    def _from_coords(self, y: Tensor, m: Tensor) -> Tensor:
        mu, _, U = self._params(y)
        x = (y if U is None else y @ U.T) + m[:, None] * mu
        return x.reshape(y.shape[0], *self.event_shape)

    def _var(self, sde: SDE | None, t: Tensor, like: Tensor) -> tuple[Tensor, Tensor]:
        """m(t) of shape (B,) and v(t) = m^2 lambda + s^2 of shape (B, D); the data itself if sde is None."""
        _, lam, _ = self._params(like)
        if sde is None:
            return torch.ones_like(t), lam.expand(t.shape[0], -1)
        m, s = sde.mean_scale(t), sde.std(t)
        return m, m[:, None] ** 2 * lam + s[:, None] ** 2

    # -------------------------------------------------------------------------- the data
    def sample(self, n: int, *, generator: torch.Generator | None = None, dtype=torch.float32, device=None) -> Tensor:
        """Draw ``n`` samples, shape (n, *event_shape)."""
        if generator is not None and device is None:
            device = generator.device
        z = torch.randn(n, self.dim, generator=generator, dtype=dtype, device=device)
        like = z
        _, lam, _ = self._params(like)
        return self._from_coords(z * lam.sqrt(), torch.ones(n, dtype=dtype, device=z.device))

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact log-density of the data distribution, shape (B,)."""
        return self._log_prob(None, x, torch.zeros(x.shape[0], dtype=x.dtype, device=x.device))

    # -------------------------------------------------------------------------- the noised marginals
    def log_prob_t(self, sde: SDE, x: Tensor, t: float | Tensor) -> Tensor:
        """Exact log p_t(x) of the marginal at time t under ``sde``, shape (B,)."""
        return self._log_prob(sde, x, batch_time(t, x))

    def _log_prob(self, sde: SDE | None, x: Tensor, t: Tensor) -> Tensor:
        m, v = self._var(sde, t, x)
        y = self._coords(x, m)
        return -0.5 * (self.dim * _LOG_2PI + v.log().sum(1) + (y**2 / v).sum(1))

    def score(self, sde: SDE, x: Tensor, t: float | Tensor) -> Tensor:
        """Exact score grad_x log p_t(x), shape of x."""
        t = batch_time(t, x)
        m, v = self._var(sde, t, x)
        mu, _, U = self._params(x)
        y = -self._coords(x, m) / v
        return (y if U is None else y @ U.T).reshape(x.shape)

    def score_fn(self, sde: SDE) -> ScoreFn:
        """The exact score as a ``score_fn(x, t)`` for the samplers and likelihoods."""
        return lambda x, t: self.score(sde, x, t)

    def marginal(self, sde: SDE, t: float) -> Gaussian:
        """The noised marginal p_t itself, as a :class:`Gaussian`."""
        m, s = float(sde.mean_scale(t)), float(sde.std(t))
        lam = m**2 * self.eigvals + s**2
        mean = m * self.mean
        if self.eigvecs is None:
            return Gaussian(mean, std=lam.sqrt().reshape(self.event_shape))
        return Gaussian(mean, cov=(self.eigvecs * lam) @ self.eigvecs.T)

    # -------------------------------------------------------------------------- probability-flow ODE
    def flow(self, sde: SDE, x: Tensor, t_from: float | Tensor, t_to: float | Tensor) -> Tensor:
        """Exact probability-flow ODE map x(t_from) -> x(t_to), either direction, shape of x."""
        t0, t1 = batch_time(t_from, x), batch_time(t_to, x)
        m0, v0 = self._var(sde, t0, x)
        m1, v1 = self._var(sde, t1, x)
        return self._from_coords(self._coords(x, m0) * (v1 / v0).sqrt(), m1)

    def flow_logdet(self, sde: SDE, t_from: float | Tensor, t_to: float | Tensor) -> Tensor:
        """log|det d x(t_to) / d x(t_from)| of the flow map; a scalar tensor (float64) or shape (B,)."""
        t0 = torch.as_tensor(t_from, dtype=torch.float64).reshape(-1)
        t1 = torch.as_tensor(t_to, dtype=torch.float64).reshape(-1)
        like = torch.empty(0, dtype=torch.float64)
        v0 = self._var(sde, t0, like)[1]
        v1 = self._var(sde, t1, like)[1]
        out = 0.5 * (v1.log() - v0.log()).sum(1)
        return out[0] if out.numel() == 1 and not isinstance(t_from, Tensor) else out

    def ode_log_prob(self, sde: SDE, x: Tensor, eps: float = 1e-5) -> Tensor:
        """What a perfect probability-flow likelihood solver returns for x at time eps (shape (B,)).

        log p(x) = log p_T(x(T)) + log|det dx(T)/dx(eps)|, with the SDE's own prior as p_T (paper eq. 38).
        It differs from :meth:`log_prob_t` at eps by the prior mismatch at T only.
        """
        z = self.flow(sde, x, eps, sde.T)
        return sde.prior_logp(z) + self.flow_logdet(sde, eps, sde.T).to(x)


class GaussianMixture:
    """Mixture sum_k w_k N(mu_k, Sigma_k) of :class:`Gaussian` components with exact noised marginals and score.

    Args:
        components: Gaussians with a common event shape.
        weights: Mixture weights (positive; normalised here). Equal weights if omitted.
    """

    def __init__(self, components: Sequence[Gaussian], weights: Sequence[float] | Tensor | None = None):
        self.components = list(components)
        if not self.components:
            raise ValueError("a mixture needs at least one component")
        shapes = {c.event_shape for c in self.components}
        if len(shapes) != 1:
            raise ValueError(f"all components must share one event shape, got {sorted(shapes)}")
        self.event_shape = self.components[0].event_shape
        self.dim = self.components[0].dim
        k = len(self.components)
        w = _as_f64(torch.ones(k) if weights is None else weights, "weights")
        if w.shape != (k,) or not bool((w > 0).all()):
            raise ValueError(f"weights must be {k} positive numbers, got {w.tolist()}")
        self.weights = w / w.sum()

    def __repr__(self) -> str:
        return f"GaussianMixture(k={len(self.components)}, event_shape={self.event_shape})"

    def sample(self, n: int, *, generator: torch.Generator | None = None, dtype=torch.float32, device=None) -> Tensor:
        """Draw ``n`` samples, shape (n, *event_shape)."""
        return self.sample_with_labels(n, generator=generator, dtype=dtype, device=device)[0]

    def sample_with_labels(self, n: int, *, generator=None, dtype=torch.float32, device=None) -> tuple[Tensor, Tensor]:
        """Samples and the index of the component each came from."""
        if generator is not None and device is None:
            device = generator.device
        labels = torch.multinomial(self.weights.to(device), n, replacement=True, generator=generator)
        out = torch.empty(n, *self.event_shape, dtype=dtype, device=device)
        for k, comp in enumerate(self.components):
            idx = (labels == k).nonzero().squeeze(1)
            if idx.numel():
                out[idx] = comp.sample(idx.numel(), generator=generator, dtype=dtype, device=device)
        return out, labels

    def _component_logps(self, sde: SDE | None, x: Tensor, t: Tensor) -> Tensor:
        logw = self.weights.to(x).log()
        return torch.stack([c._log_prob(sde, x, t) + logw[k] for k, c in enumerate(self.components)], dim=1)

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact log-density of the data, shape (B,)."""
        t = torch.zeros(x.shape[0], dtype=x.dtype, device=x.device)
        return self._component_logps(None, x, t).logsumexp(1)

    def log_prob_t(self, sde: SDE, x: Tensor, t: float | Tensor) -> Tensor:
        """Exact log p_t(x) under ``sde``, shape (B,)."""
        return self._component_logps(sde, x, batch_time(t, x)).logsumexp(1)

    def responsibilities(self, sde: SDE | None, x: Tensor, t: float | Tensor = 0.0) -> Tensor:
        """Posterior component probabilities p(k | x_t), shape (B, K); of the data itself if sde is None."""
        return self._component_logps(sde, x, batch_time(t, x)).softmax(1)

    def score(self, sde: SDE, x: Tensor, t: float | Tensor) -> Tensor:
        """Exact score of the noised mixture: sum_k p(k | x_t) grad log N_k(x_t)."""
        t = batch_time(t, x)
        r = self._component_logps(sde, x, t).softmax(1)
        out = torch.zeros_like(x)
        for k, c in enumerate(self.components):
            out = out + append_dims(r[:, k], x.ndim) * c.score(sde, x, t)
        return out

    def score_fn(self, sde: SDE) -> ScoreFn:
        """The exact score as a ``score_fn(x, t)``."""
        return lambda x, t: self.score(sde, x, t)

    def mean_cov(self) -> tuple[Tensor, Tensor]:
        """Mean (D,) and covariance (D, D) of the mixture (float64), for moment-matching checks."""
        mus = torch.stack([c.mean.reshape(-1) for c in self.components])
        covs = torch.stack([_dense_cov(c) for c in self.components])
        w = self.weights
        mean = w @ mus
        centred = mus - mean
        cov = (w[:, None, None] * (covs + centred[:, :, None] * centred[:, None, :])).sum(0)
        return mean, cov


def _dense_cov(g: Gaussian) -> Tensor:
    if g.eigvecs is None:
        return torch.diag(g.eigvals)
    return (g.eigvecs * g.eigvals) @ g.eigvecs.T


def gaussian_mean_cov(g: Gaussian) -> tuple[Tensor, Tensor]:
    """Mean (D,) and dense covariance (D, D) of a :class:`Gaussian` (float64)."""
    return g.mean.reshape(-1).clone(), _dense_cov(g)


def anisotropic_gaussian(dim: int = 64, *, min_std: float = 0.1, max_std: float = 1.0, seed: int = 0) -> Gaussian:
    """The benchmark Gaussian: stds log-spaced in [min_std, max_std], randomly rotated, with an offset mean."""
    g = torch.Generator().manual_seed(seed)
    q, r = torch.linalg.qr(torch.randn(dim, dim, generator=g, dtype=torch.float64))
    q = q * torch.sign(torch.diagonal(r))
    lam = torch.logspace(math.log10(min_std**2), math.log10(max_std**2), dim, dtype=torch.float64)
    cov = (q * lam) @ q.T
    cov = 0.5 * (cov + cov.T)
    mean = 0.5 * torch.randn(dim, generator=g, dtype=torch.float64)
    return Gaussian(mean, cov=cov)


def eight_gaussians(
    *, radius: float = 2.0, std: float = 0.15, weights: Sequence[float] | None = None
) -> GaussianMixture:
    """The benchmark 2-D mixture: 8 isotropic modes evenly spaced on a circle."""
    angles = torch.arange(8, dtype=torch.float64) * (2 * math.pi / 8)
    means = radius * torch.stack([angles.cos(), angles.sin()], 1)
    return GaussianMixture([Gaussian(mu, std=std) for mu in means], weights)
