"""The particles' own estimate of the denoiser's Jacobian, and the terms of the reverse step it restores.

The ancestral (DDPM) step of the particle filter takes x_{t_{i+1}} ~ N(a x + c0 x0_hat(x), lambda^2 I) with x0_hat
Tweedie's denoised estimate: it treats x0_hat as if it were x_0. For Gaussian data the exact reverse transition is

    x_{t_{i+1}} | x_{t_i} ~ N(a x + c0 x0_hat(x), lambda^2 I + c0^2 Gamma),   Gamma = Cov[x_0 | x_{t_i}],

and Gamma = (s^2 / m) J with J = d x0_hat / d x the denoiser's Jacobian (second-order Tweedie; e.g. Meng et al.
2021, "Estimating high order gradients of the data distribution by denoising"). Dropping c0^2 Gamma costs the filter
three ways (u = unobserved, o = observed coordinates in the observation's basis; d = y_{t_{i+1}} - mean_o):

1. the predictive variance of the next observation is lambda^2 + c0^2 Gamma_oo, not lambda^2: weights too sharp;
2. given the observation, u shifts by c0^2 Gamma_uo (lambda^2 + c0^2 Gamma_oo)^{-1} d (the locally optimal
   proposal of the full kernel, Doucet et al. 2000), a term the isotropic kernel has not;
3. the noise of u lacks c0^2 Gamma_uu (the step's missing variance, Bao et al. 2022, Analytic-DPM).

:class:`EnsembleJacobian` estimates J from the K particles of each sample, which at a step differ only in u: the
least-squares fit of their x0_hat on their positions (an ensemble Kalman filter's gain, Evensen 1994) gives J's
columns on the span of their deviations, exactly for Gaussian data, and with it J_ou and J_uu there. J_oo is not
seen (the particles share o): a scalar, the mean eigenvalue of J_uu on the span, stands in for it. The corrected step
is a Gaussian kernel given the particles, the weights are its own predictive density, and every correction is
O(c0^2), so the filter stays consistent as particles and steps grow.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class EnsembleJacobian:
    """J = d x0_hat / d x of one sample's particles, on the span of their deviations (least squares).

    For w = dz^T alpha in the span, J w = dx0^T alpha with alpha = G^+ dz w, G = dz dz^T: the fit is exact where J
    is constant (Gaussian data) and the deviations span the unobserved coordinates (K - 1 >= their number).

    Attributes:
        dz: Deviations of the particles' positions from their mean, unobserved coordinates only (B, K, D), in the
            observation's basis, D the flattened event size.
        dx0: Deviations of their denoised estimates x0_hat, all coordinates (B, K, D).
        pinv: G^+, pseudo-inverse of the Gram matrix G = dz dz^T (B, K, K).
        rank: Dimension of the span per sample (B,), at least 1.
        quad: dz J dz^T on the unobserved coordinates, symmetrised (B, K, K).
    """

    dz: Tensor
    dx0: Tensor
    pinv: Tensor
    rank: Tensor
    quad: Tensor

    @classmethod
    def fit(cls, z: Tensor, z0: Tensor, free: Tensor) -> EnsembleJacobian:
        """Fit from positions z and denoised estimates z0 (B, K, D) in the basis; ``free`` (B or 1, 1, D) marks u."""
        dz = (z - z.mean(1, keepdim=True)) * free
        dx0 = z0 - z0.mean(1, keepdim=True)
        gram = dz @ dz.transpose(1, 2)
        ev, vec = torch.linalg.eigh(gram)  # ascending
        kept = ev > math.sqrt(torch.finfo(z.dtype).eps) * ev[:, -1:].clamp_min(torch.finfo(z.dtype).tiny)
        rank = kept.sum(1).clamp_min(1)
        pinv = (vec * torch.where(kept, 1 / ev, torch.zeros_like(ev))[:, None, :]) @ vec.transpose(1, 2)
        quad = dz @ (dx0 * free).transpose(1, 2)
        return cls(dz, dx0, pinv, rank, 0.5 * (quad + quad.transpose(1, 2)))

    def mean_eigenvalue(self) -> Tensor:
        """tr(J_uu on the span) / rank, per sample (B,)."""
        return torch.einsum("bij,bji->b", self.pinv, self.quad) / self.rank

    def transpose_times(self, d: Tensor) -> Tensor:
        """(J^T d) projected on the span, for vectors d (B, K, D) supported on o: shape (B, K, D)."""
        return (self.pinv @ (self.dx0 @ d.transpose(1, 2))).transpose(1, 2) @ self.dz

    def sqrt_noise(self, xi: Tensor) -> Tensor:
        """Draws with covariance J_uu on the span (eigenvalues clipped at 0) from xi ~ N(0, I) of shape (B, K, K)."""
        w = self.pinv @ self.quad @ self.pinv
        ev, vec = torch.linalg.eigh(0.5 * (w + w.transpose(1, 2)))
        root = vec * ev.clamp_min(0).sqrt()[:, None, :]
        return (root @ xi.transpose(1, 2)).transpose(1, 2) @ self.dz
