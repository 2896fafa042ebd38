"""The exact posterior of a Gaussian given a linear observation: the answer the conditional samplers are tested on.

For x ~ N(mu, Sigma) and z = W x with W orthogonal (the observation's basis, applied channel-wise), the unobserved
coordinates u of z given the observed ones o are Gaussian (e.g. Bishop 2006, eq. 2.81-2.82):

    z_u | z_o ~ N(mu_u + Sigma_uo Sigma_oo^{-1} (z_o - mu_o),  Sigma_uu - Sigma_uo Sigma_oo^{-1} Sigma_ou).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..metrics import frechet_distance
from ..oracle import Gaussian, gaussian_mean_cov
from .observation import Observation


@dataclass
class GaussianPosterior:
    """N(mean, cov) of the unobserved coordinates (in the observation's basis), float64.

    Attributes:
        mean: Shape (D_u,).
        cov: Shape (D_u, D_u).
        observation: The observation (mask over the event shape, optional channel basis).
    """

    mean: Tensor
    cov: Tensor
    observation: Observation

    def coords(self, x: Tensor) -> Tensor:
        """The unobserved coordinates of samples x (B, *event_shape) in the basis: shape (B, D_u), float64."""
        obs = self.observation.bind(x.double())
        return obs.to_basis(x.double()).flatten(1)[:, ~self.observation.mask.flatten()]

    def sample(self, n: int, *, generator: torch.Generator | None = None) -> Tensor:
        """Exact draws of the unobserved coordinates, shape (n, D_u), float64."""
        z = torch.randn(n, self.mean.numel(), generator=generator, dtype=torch.float64)
        return self.mean + z @ torch.linalg.cholesky(self.cov).T

    def frechet(self, u: Tensor) -> float:
        """Fréchet distance between the Gaussian fitted to coordinates u (n, D_u) and this posterior."""
        u = u.double()
        return frechet_distance(u.mean(0).numpy(), torch.cov(u.T).reshape(len(self.mean), -1).numpy(),
                                self.mean.numpy(), self.cov.numpy())  # fmt: skip


def gaussian_posterior(g: Gaussian, observation: Observation, y: Tensor) -> GaussianPosterior:
    """The posterior of the unobserved coordinates of x ~ ``g`` given the observed ones of ``y`` (event shape).

    Args:
        g: The data distribution.
        observation: Its mask must have the event shape (one mask for the whole batch).
        y: The observed sample, shape event_shape (only the observed coordinates are used).
    """
    if tuple(observation.mask.shape) != g.event_shape or tuple(y.shape) != g.event_shape:
        raise ValueError(f"mask and y must have the event shape {g.event_shape}")
    mu, sigma = gaussian_mean_cov(g)
    w = torch.eye(g.dim, dtype=torch.float64)
    if observation.basis is not None:
        pixels = g.dim // observation.basis.shape[0]
        w = torch.kron(observation.basis.double().T.contiguous(), torch.eye(pixels, dtype=torch.float64))
    mu, sigma, z = w @ mu, w @ sigma @ w.T, w @ y.double().reshape(-1)
    o = observation.mask.reshape(-1)
    u = ~o
    gain = torch.linalg.solve(sigma[o][:, o], sigma[o][:, u]).T  # Sigma_uo Sigma_oo^{-1}
    mean = mu[u] + gain @ (z[o] - mu[o])
    cov = sigma[u][:, u] - gain @ sigma[o][:, u]
    return GaussianPosterior(mean, 0.5 * (cov + cov.T), observation)
