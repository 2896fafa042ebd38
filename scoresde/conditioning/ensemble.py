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
columns on the span of their deviations, exactly for Gaussian data, and with it Gamma_uo and Gamma_uu there, at no
cost. Gamma_oo is not seen (the particles share o); :class:`ObservedCovariance` measures it along a few directions by
forward differences of the score at the particles' mean (one evaluation per sample and direction, not per particle).
The corrected step is a Gaussian kernel given the particles, the weights are its own predictive density, and every
correction is O(c0^2), so the filter stays consistent as particles and steps grow (the measurements:
docs/guides/defaults.md).
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

    def transpose_times(self, d: Tensor) -> Tensor:
        """(J^T d) projected on the span, for vectors d (B, K, D) supported on o: shape (B, K, D)."""
        return (self.pinv @ (self.dx0 @ d.transpose(1, 2))).transpose(1, 2) @ self.dz

    def sqrt_noise(self, xi: Tensor) -> Tensor:
        """Draws with covariance J_uu on the span (eigenvalues clipped at 0) from xi ~ N(0, I) of shape (B, K, K)."""
        w = self.pinv @ self.quad @ self.pinv
        ev, vec = torch.linalg.eigh(0.5 * (w + w.transpose(1, 2)))
        root = vec * ev.clamp_min(0).sqrt()[:, None, :]
        return (root @ xi.transpose(1, 2)).transpose(1, 2) @ self.dz


@dataclass
class ObservedCovariance:
    """S_oo = lambda^2 I + c0^2 Gamma_oo, with Gamma_oo probed along a few directions and a scalar elsewhere.

    Gamma_oo is measured on an orthonormal set Q of R directions supported on o (Gamma v from forward differences of
    the score, :meth:`FilterStep._probe`): Gamma_oo ~ Q^T G_R Q + gamma_perp (I - Q^T Q), G_R = Q Gamma Q^T and
    gamma_perp = tr(G_R) / R. The directions are those the weights see: the particles' common innovation and the
    leading directions in which their x0_hat differ on o.

    Attributes:
        q: Orthonormal directions (B, R, D) in the basis, zero on u.
        g: G_R, symmetrised (B, R, R).
        lam2: lambda^2, the ancestral step's variance.
        c0: The weight of x0_hat in the step's mean.
    """

    q: Tensor
    g: Tensor
    lam2: float
    c0: float

    @staticmethod
    def directions(d: Tensor, dx0: Tensor, observed: Tensor, r: int) -> Tensor:
        """The mean innovation d_bar and the top r - 1 directions of the particles' x0_hat on o, orthonormal (B, r, D).

        Directions that are linearly dependent on the others come back as zero rows.

        Args:
            d: Innovations y_{t_{i+1}} - mean_o of the particles (B, K, D), zero on u.
            dx0: Deviations of their x0_hat (B, K, D).
            observed: 1 on o, 0 on u (B or 1, 1, D).
            r: Number of directions, >= 1.
        """
        tol = math.sqrt(torch.finfo(d.dtype).eps)
        _, sv, vh = torch.linalg.svd(dx0 * observed, full_matrices=False)
        top = vh[:, : r - 1] * (sv[:, : r - 1] > tol * sv[:, :1].clamp_min(torch.finfo(d.dtype).tiny))[:, :, None]
        d_bar = d.mean(1, keepdim=True)
        a = torch.cat([d_bar / d_bar.norm(dim=2, keepdim=True).clamp_min(torch.finfo(d.dtype).tiny), top], 1) * observed
        ev, vec = torch.linalg.eigh(a @ a.transpose(1, 2))  # orthonormalise within the span of the rows
        keep = ev > tol * ev[:, -1:].clamp_min(torch.finfo(a.dtype).tiny)
        scale = torch.where(keep, ev.clamp_min(torch.finfo(a.dtype).tiny).rsqrt(), torch.zeros_like(ev))
        return (vec * scale[:, None, :]).transpose(1, 2) @ a

    def solve(self, d: Tensor) -> Tensor:
        """S_oo^{-1} d for vectors d (B, K, D) supported on o."""
        r = self.g.shape[1]
        eye = torch.eye(r, dtype=d.dtype, device=d.device)
        rank = (self.q.square().sum(2) > 0.5).sum(1).clamp_min(1)
        perp = (self.g.diagonal(dim1=1, dim2=2).sum(1) / rank).clamp_min(0)
        coef = d @ self.q.transpose(1, 2)  # (B, K, R)
        inside = coef @ torch.linalg.inv(self.lam2 * eye + self.c0**2 * self.g) @ self.q
        return inside + (d - coef @ self.q) / (self.lam2 + self.c0**2 * perp)[:, None, None]
