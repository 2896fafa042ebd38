"""A linear observation of x and the forward-noised path of the observed part (Song et al. 2021, sec. 5, App. I).

Inpainting and colorization both observe some coordinates of x in an orthogonal basis: z = U x, and the entries of
z where a boolean mask is True are known. For inpainting U is the identity; for colorization U rotates the colour
channels of every pixel so that the first channel is the grey level (paper Appendix I.3). Because every SDE of the
library is linear with a scalar coefficient, dx = f(t) x dt + g(t) dw, the coordinates of z = U x evolve
independently under the forward process: the observed part y_t of x_t is y forward-noised by itself,
y_t = m(t) y + s(t) z. :class:`ObservedPath` draws these y_t along a time grid.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from .._utils import check_finite
from .._validation import check_choice

PATH_NOISE = ("fresh", "fixed", "bridge")


class Observation:
    """The coordinates of U x where ``mask`` is True, for an orthogonal U acting on the channel dimension.

    Args:
        mask: Boolean, True where observed, shape (B, *event_shape) or event_shape (same mask for every sample);
            in the basis of ``basis`` when one is given.
        basis: Orthogonal (C, C) matrix U mixing the channels (dim 1) of every pixel: z[:, j] = sum_c x[:, c] U[c, j].
            None (default) is the identity: the mask selects pixels of x itself.
    """

    def __init__(self, mask: Tensor, basis: Tensor | None = None) -> None:
        if not isinstance(mask, Tensor) or mask.dtype != torch.bool:
            got = mask.dtype if isinstance(mask, Tensor) else type(mask).__name__
            raise ValueError(f"mask must be a boolean tensor (True where observed), got {got}")
        if mask.ndim < 1:
            raise ValueError("mask must have the event shape or the shape (B, *event_shape) of y")
        if basis is not None:
            if not isinstance(basis, Tensor) or basis.ndim != 2 or basis.shape[0] != basis.shape[1]:
                raise ValueError(f"basis must be a square (C, C) tensor, got {getattr(basis, 'shape', basis)}")
            eye = torch.eye(basis.shape[0], dtype=torch.float64)
            if not torch.allclose(basis.double().T @ basis.double(), eye, atol=1e-5):
                raise ValueError("basis must be orthogonal (basis.T @ basis = I)")
        self.mask = mask
        self.basis = basis

    def check(self, y: Tensor) -> Tensor:
        """Validate ``y`` (B, *event_shape) against the mask; return the mask broadcast as (B or 1, *event_shape)."""
        if not isinstance(y, Tensor) or not y.is_floating_point() or y.ndim < 2:
            raise ValueError(f"y must be a floating-point tensor of shape (B, *event_shape), got {_shape(y)}")
        check_finite(y, "y")
        event = tuple(y.shape[1:])
        if tuple(self.mask.shape) == event:
            mask = self.mask.unsqueeze(0)
        elif tuple(self.mask.shape) == tuple(y.shape):
            mask = self.mask
        else:
            raise ValueError(
                f"mask must have y's event shape {event} or y's shape {tuple(y.shape)}, got {tuple(self.mask.shape)}"
            )
        if self.basis is not None and y.shape[1] != self.basis.shape[0]:
            raise ValueError(f"basis is {tuple(self.basis.shape)} but y has {y.shape[1]} channels (dim 1)")
        return mask.to(y.device)

    def bind(self, y: Tensor) -> BoundObservation:
        """This observation with its value ``y`` (B, *event_shape), checked, on y's device and dtype."""
        mask = self.check(y)
        basis = None if self.basis is None else self.basis.to(dtype=y.dtype, device=y.device)
        return BoundObservation(mask, basis, y)


class BoundObservation:
    """An :class:`Observation` with its observed value: y (B, *event_shape) and the mask broadcast against it."""

    def __init__(self, mask: Tensor, basis: Tensor | None, y: Tensor) -> None:
        self.mask, self.basis = mask, basis
        self.y = self.to_basis(y)  # (B, *event_shape), meaningful where mask is True

    @property
    def batch(self) -> int:
        return self.y.shape[0]

    def to_basis(self, x: Tensor) -> Tensor:
        """z = U x, channel-wise: (B, C, ...) -> (B, C, ...); x itself without a basis."""
        return x if self.basis is None else (x.movedim(1, -1) @ self.basis).movedim(-1, 1)

    def from_basis(self, z: Tensor) -> Tensor:
        """x = U^T z, the inverse of :meth:`to_basis`."""
        return z if self.basis is None else (z.movedim(1, -1) @ self.basis.T).movedim(-1, 1)

    def merge(self, x: Tensor, z_obs: Tensor, repeats: int = 1) -> Tensor:
        """x with its observed part (in the basis) replaced by ``z_obs``.

        Args:
            x: States, shape (B * repeats, *event_shape), sample b's copies contiguous (b * repeats + k).
            z_obs: Observed values in the basis, shape (B, *event_shape); only the masked entries are used.
            repeats: Copies of every sample in x (particles of a particle filter).
        """
        mask, z_obs = self.repeat(self.mask, repeats), self.repeat(z_obs, repeats)
        if self.basis is None:
            return torch.where(mask, z_obs, x)
        return self.from_basis(torch.where(mask, z_obs, self.to_basis(x)))

    def residual(self, x: Tensor, z_obs: Tensor, repeats: int = 1) -> Tensor:
        """Squared distance of x's observed part to ``z_obs`` over the observed entries: shape (B * repeats,)."""
        d = (self.to_basis(x) - self.repeat(z_obs, repeats)) * self.repeat(self.mask, repeats)
        return d.flatten(1).square().sum(1)

    @staticmethod
    def repeat(v: Tensor, repeats: int) -> Tensor:
        """(B, ...) -> (B * repeats, ...) with copies contiguous; a leading 1 stays 1 (it broadcasts)."""
        return v if repeats == 1 or v.shape[0] == 1 else v.repeat_interleave(repeats, dim=0)


class ObservedPath:
    """The observed part y_t of x_t along a time grid: y forward-noised, y_t = m(t) y + s(t) z (in the basis).

    Args:
        noise: How z is drawn at the grid times:
            "fresh": a new z at every call (the paper's inpainting, Song et al. 2021, App. I.2; RePaint);
            "fixed": one z for the whole path (y_t moves deterministically, as a probability-flow ODE would);
            "bridge": one path of the forward process itself, y_{t_{i+1}} ~ q(y_{t_{i+1}} | y_{t_i}, y), so that
            (y_{t_0}, ..., y_{t_N}) has the joint law of the forward-noised observation; repeated calls at one
            time return the same value (what a particle filter conditions on; Dou & Song 2024).
    """

    def __init__(self, noise: str = "fresh") -> None:
        check_choice("noise", noise, PATH_NOISE)
        self.noise = noise

    def start(self, y: Tensor, m: list[float], s: list[float], generator: torch.Generator | None) -> None:
        """Begin a path for the observation y (B, *event_shape) given m and s at every grid time t_0 > ... > t_N."""
        self._y, self._m, self._s, self._gen = y, m, s, generator
        self._z = self._randn()
        self._bridge = {0: m[0] * y + s[0] * self._z}

    def at(self, i: int) -> Tensor:
        """y_{t_i}, shape of y. For "bridge", times must be visited in order (t_i after t_{i-1} or t_i again)."""
        m, s, y = self._m, self._s, self._y
        if self.noise == "fixed":
            return m[i] * y + s[i] * self._z
        if self.noise == "fresh":
            return m[i] * y + s[i] * self._randn()
        if i not in self._bridge:
            # The posterior of the forward kernel x_{t_{i-1}} = r x_{t_i} + sqrt(v) z given x_{t_{i-1}} and x_0 = y.
            prev = self._bridge[i - 1]  # KeyError here is a misuse: the bridge is drawn forward in order
            r = m[i - 1] / m[i]
            v = max(s[i - 1] ** 2 - r**2 * s[i] ** 2, 0.0)
            mean = (v * m[i] * y + r * s[i] ** 2 * prev) / s[i - 1] ** 2
            self._bridge = {i - 1: prev, i: mean + math.sqrt(v * s[i] ** 2 / s[i - 1] ** 2) * self._randn()}
        return self._bridge[i]

    def _randn(self) -> Tensor:
        y = self._y
        return torch.randn(y.shape, generator=self._gen, dtype=y.dtype, device=y.device)


def _shape(v: object) -> str:
    return str(tuple(v.shape)) if isinstance(v, Tensor) else type(v).__name__
