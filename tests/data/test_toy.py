"""Toy 2-D sets and the oracle datasets: shapes, determinism, and the geometry each is defined by."""

import math

import pytest
import torch

from scoresde import data as D

TOY = {
    "checkerboard": D.checkerboard,
    "swiss_roll": D.swiss_roll,
    "moons": D.moons,
    "pinwheel": D.pinwheel,
    "eight_gaussians": D.eight_gaussians,
    "gaussian": D.gaussian,
    "mixture": D.mixture,
}


@pytest.mark.parametrize("name", sorted(TOY))
def test_shapes_seeds_and_metadata(name):
    ds = TOY[name](n_train=500, n_test=100, seed=1)
    assert ds.name == name and ds.event_shape == (2,)
    assert ds.train.shape == (500, 2) and ds.test.shape == (100, 2) and ds.train.dtype == torch.float32
    assert ds.levels is None
    assert ds.data_range == (float(ds.train.min()), float(ds.train.max()))
    assert bool(torch.isfinite(ds.train).all())
    again = TOY[name](n_train=500, n_test=100, seed=1)
    assert torch.equal(ds.train, again.train) and torch.equal(ds.test, again.test)
    assert not torch.equal(ds.train, TOY[name](n_train=500, n_test=100, seed=2).train)
    if ds.oracle is not None:  # the seed draws the points, never changes the distribution
        other = TOY[name](n_train=5, n_test=1, seed=2).oracle
        x = ds.test[:5].double()
        torch.testing.assert_close(ds.oracle.log_prob(x), other.log_prob(x))
    if ds.train_labels is not None:
        assert ds.num_classes == int(ds.train_labels.max()) + 1


def test_checkerboard_occupies_the_dark_squares_uniformly():
    x = D.checkerboard(n_train=16000, n_test=1, seed=0).train
    assert float(x.abs().max()) <= 4.0
    cells = torch.floor(x / 2) + 2
    assert bool(((cells[:, 0] + cells[:, 1]) % 2 == 0).all())
    counts = torch.bincount((4 * cells[:, 0] + cells[:, 1]).long(), minlength=16)
    assert int((counts > 0).sum()) == 8 and counts[counts > 0].min() > 1800


def test_eight_gaussians_and_mixture_carry_their_oracle():
    ds = D.eight_gaussians(n_train=8000, n_test=10)
    modes = ds.oracle.components
    centres = torch.stack([c.mean for c in modes]).float()
    for k in range(8):
        torch.testing.assert_close(ds.train[ds.train_labels == k].mean(0), centres[k], atol=0.02, rtol=0)
    assert torch.allclose(centres.norm(dim=1), torch.full((8,), 2.0))
    mix = D.mixture(n_train=20000, n_test=10)
    mean, cov = mix.oracle.mean_cov()
    torch.testing.assert_close(mix.train.double().mean(0), mean, atol=0.05, rtol=0)
    torch.testing.assert_close(torch.cov(mix.train.double().T), cov, atol=0.1, rtol=0)


def test_gaussian_dim_and_moments():
    ds = D.gaussian(dim=3, n_train=20000, n_test=10)
    assert ds.event_shape == (3,)
    mean, cov = ds.oracle.mean.double(), ds.oracle.eigvecs @ torch.diag(ds.oracle.eigvals) @ ds.oracle.eigvecs.T
    torch.testing.assert_close(ds.train.double().mean(0), mean, atol=0.03, rtol=0)
    torch.testing.assert_close(torch.cov(ds.train.double().T), cov, atol=0.05, rtol=0)


def test_moons_pinwheel_swiss_roll_geometry():
    moons = D.moons(n_train=4000, n_test=10)
    assert set(moons.train_labels.tolist()) == {0, 1} and moons.num_classes == 2
    pin = D.pinwheel(n_train=5000, n_test=10)
    # the arms sit at angles 2 pi k / 5 + shear: the mean angle of arm k moves by 2 pi / 5 per arm
    angles = torch.atan2(pin.train[:, 1], pin.train[:, 0])
    arm0 = torch.atan2(torch.sin(angles[pin.train_labels == 0]).mean(), torch.cos(angles[pin.train_labels == 0]).mean())
    arm1 = torch.atan2(torch.sin(angles[pin.train_labels == 1]).mean(), torch.cos(angles[pin.train_labels == 1]).mean())
    assert float(arm1 - arm0) == pytest.approx(2 * math.pi / 5, abs=0.05)
    roll = D.swiss_roll(n_train=4000, n_test=10)
    r = 3 * roll.train.norm(dim=1)
    assert 1.5 * math.pi - 2 < float(r.min()) and float(r.max()) < 4.5 * math.pi + 2


@pytest.mark.parametrize("kwargs", [{"n_train": 0}, {"n_test": -1}, {"n_train": 2.5}])
def test_bad_sizes(kwargs):
    with pytest.raises(ValueError, match="n_t"):
        D.checkerboard(**kwargs)
