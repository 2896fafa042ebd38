"""Two-dimensional toy distributions and the analytic oracle distributions as datasets.

Each ``NAME(n_train, n_test, seed)`` draws n_train + n_test points with a generator seeded by ``seed`` and
returns an :class:`ArrayDataset` with ``levels=None`` (continuous data) and ``data_range`` the bounding box
of the training points. The ``sample_NAME(n, generator)`` functions draw fresh points.
Shapes follow FFJORD's toy sets (Grathwohl et al. 2019), on about [-4, 4]^2.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from .._validation import check_int
from ..oracle import Gaussian, GaussianMixture, anisotropic_gaussian
from ..oracle import eight_gaussians as _eight_gaussians_oracle
from .base import ArrayDataset

Sampler = Callable[[int, torch.Generator], tuple[Tensor, Tensor | None]]


def sample_checkerboard(n: int, generator: torch.Generator) -> tuple[Tensor, None]:
    """Uniform on the 8 dark squares (side 2) of a 4 x 4 checkerboard on [-4, 4]^2 (column + row even)."""
    cells = torch.tensor([(c, r) for c in range(4) for r in range(4) if (c + r) % 2 == 0], dtype=torch.float32)
    idx = torch.randint(0, cells.shape[0], (n,), generator=generator)
    return -4 + 2 * cells[idx] + 2 * torch.rand(n, 2, generator=generator), None


def sample_swiss_roll(n: int, generator: torch.Generator, noise: float = 0.5) -> tuple[Tensor, None]:
    """A 2-D Swiss roll: r = theta, theta ~ U(1.5 pi, 4.5 pi), plus N(0, noise^2) noise, scaled by 1/3."""
    theta = 1.5 * math.pi * (1 + 2 * torch.rand(n, generator=generator))
    pts = torch.stack([theta * theta.cos(), theta * theta.sin()], 1) + noise * torch.randn(n, 2, generator=generator)
    return pts / 3, None


def sample_moons(n: int, generator: torch.Generator, noise: float = 0.1) -> tuple[Tensor, Tensor]:
    """Two interleaved half circles (as scikit-learn's make_moons), centred and scaled by 2; labels = moon."""
    labels = torch.randint(0, 2, (n,), generator=generator)
    angle = math.pi * torch.rand(n, generator=generator)
    upper = torch.stack([angle.cos(), angle.sin()], 1)
    lower = torch.stack([1 - angle.cos(), 0.5 - angle.sin()], 1)
    pts = torch.where(labels.unsqueeze(1) == 0, upper, lower) + noise * torch.randn(n, 2, generator=generator)
    return 2 * (pts - torch.tensor([0.5, 0.25])), labels


def sample_pinwheel(
    n: int, generator: torch.Generator, arms: int = 5, radial_std: float = 0.3, tangential_std: float = 0.1
) -> tuple[Tensor, Tensor]:
    """FFJORD's pinwheel: Gaussian blobs at (1, 0) sheared by angle rate * exp(r) and rotated onto ``arms`` arms."""
    labels = torch.randint(0, arms, (n,), generator=generator)
    feats = torch.randn(n, 2, generator=generator) * torch.tensor([radial_std, tangential_std])
    feats[:, 0] += 1.0
    angle = 2 * math.pi * labels / arms + 0.25 * torch.exp(feats[:, 0])
    c, s = angle.cos(), angle.sin()
    rot = torch.stack([torch.stack([c, -s], 1), torch.stack([s, c], 1)], 1)  # (n, 2, 2)
    return 2 * torch.einsum("nij,nj->ni", rot, feats), labels


def _dataset(name: str, sampler: Sampler, n_train: int, n_test: int, seed: int, num_classes=None, oracle=None):
    check_int("n_train", n_train)
    check_int("n_test", n_test)
    pts, labels = sampler(n_train + n_test, torch.Generator().manual_seed(seed))
    pts = pts.to(torch.float32)
    train, test = pts[:n_train], pts[n_train:]
    return ArrayDataset(
        name=name,
        train=train,
        test=test,
        train_labels=None if labels is None else labels[:n_train].long(),
        test_labels=None if labels is None else labels[n_train:].long(),
        levels=None,
        data_range=(float(train.min()), float(train.max())),
        num_classes=num_classes if labels is not None else None,
        oracle=oracle,
    )


def checkerboard(n_train: int = 20000, n_test: int = 2000, seed: int = 0) -> ArrayDataset:
    """Checkerboard points, see :func:`sample_checkerboard`."""
    return _dataset("checkerboard", sample_checkerboard, n_train, n_test, seed)


def swiss_roll(n_train: int = 20000, n_test: int = 2000, seed: int = 0) -> ArrayDataset:
    """Swiss-roll points, see :func:`sample_swiss_roll`."""
    return _dataset("swiss_roll", sample_swiss_roll, n_train, n_test, seed)


def moons(n_train: int = 20000, n_test: int = 2000, seed: int = 0) -> ArrayDataset:
    """Two-moons points with the moon as label, see :func:`sample_moons`."""
    return _dataset("moons", sample_moons, n_train, n_test, seed, num_classes=2)


def pinwheel(n_train: int = 20000, n_test: int = 2000, seed: int = 0) -> ArrayDataset:
    """Pinwheel points with the arm as label, see :func:`sample_pinwheel`."""
    return _dataset("pinwheel", sample_pinwheel, n_train, n_test, seed, num_classes=5)


def _oracle_sampler(dist: Gaussian | GaussianMixture) -> Sampler:
    if isinstance(dist, GaussianMixture):
        return lambda n, g: dist.sample_with_labels(n, generator=g)
    return lambda n, g: (dist.sample(n, generator=g), None)


def eight_gaussians(n_train: int = 20000, n_test: int = 2000, seed: int = 0) -> ArrayDataset:
    """The oracle's 8-mode mixture (radius 2, std 0.15) with the mode as label; ``.oracle`` holds it."""
    dist = _eight_gaussians_oracle()
    return _dataset("eight_gaussians", _oracle_sampler(dist), n_train, n_test, seed, num_classes=8, oracle=dist)


def gaussian(dim: int = 2, n_train: int = 20000, n_test: int = 2000, seed: int = 0) -> ArrayDataset:
    """The oracle's anisotropic Gaussian (stds log-spaced in [0.1, 1], rotated) in ``dim`` dimensions.

    The distribution is always ``anisotropic_gaussian(dim)`` (its own seed 0, as in the benchmarks); ``seed``
    only draws the points.
    """
    dist = anisotropic_gaussian(check_int("dim", dim))
    return _dataset("gaussian", _oracle_sampler(dist), n_train, n_test, seed, oracle=dist)


def two_d_mixture() -> GaussianMixture:
    """A 2-D mixture with unequal weights and correlated components (three modes)."""
    comps = [
        Gaussian([-2.0, -1.0], cov=torch.tensor([[0.5, 0.3], [0.3, 0.4]])),
        Gaussian([2.0, -1.0], std=[0.2, 0.6]),
        Gaussian([0.0, 2.0], cov=torch.tensor([[0.6, -0.25], [-0.25, 0.2]])),
    ]
    return GaussianMixture(comps, weights=[0.5, 0.3, 0.2])


def mixture(n_train: int = 20000, n_test: int = 2000, seed: int = 0) -> ArrayDataset:
    """The three-mode mixture of :func:`two_d_mixture` with the component as label; ``.oracle`` holds it."""
    dist = two_d_mixture()
    return _dataset("mixture", _oracle_sampler(dist), n_train, n_test, seed, num_classes=3, oracle=dist)
