"""Data-space metrics (MMD, sliced Wasserstein, coordinate Fréchet, oracle NLL) against known answers."""

import math

import numpy as np
import pytest
import torch

from scoresde.metrics import (
    coordinate_frechet,
    frechet_distance,
    lowdim_metrics,
    mmd_rbf,
    oracle_nll,
    sliced_wasserstein,
)
from scoresde.oracle import anisotropic_gaussian, eight_gaussians, gaussian_mean_cov


def test_rbf_mmd_matches_the_gaussian_closed_form():
    # x ~ N(a, s^2 I), y ~ N(b, s^2 I) in d dims, one bandwidth h:
    # MMD^2 = 2 c (1 - exp(-|a - b|^2 / (2 (h^2 + 2 s^2)))),  c = (h^2 / (h^2 + 2 s^2))^(d/2)
    rng = np.random.default_rng(0)
    d, s, h = 2, 0.5, 1.0
    delta = np.array([0.8, -0.3])
    x = rng.normal(0, s, (3000, d))
    y = rng.normal(0, s, (3000, d)) + delta
    c = (h**2 / (h**2 + 2 * s**2)) ** (d / 2)
    expected = 2 * c * (1 - math.exp(-(delta**2).sum() / (2 * (h**2 + 2 * s**2))))
    assert mmd_rbf(x, y, bandwidths=[h]) == pytest.approx(expected, rel=0.05)
    assert abs(mmd_rbf(x, rng.normal(0, s, (3000, d)), bandwidths=[h])) < 0.05 * expected


def test_sliced_wasserstein_known_answers():
    rng = np.random.default_rng(1)
    x = rng.standard_normal((1000, 2))
    delta = np.array([1.0, 2.0])
    # a pure shift moves every projection by theta.delta: SW_2^2 = E (theta.delta)^2 = |delta|^2 / d
    assert sliced_wasserstein(x, x + delta, num_projections=4096) == pytest.approx(5.0 / 2, rel=0.05)
    # unequal sizes: x against x repeated twice is one empirical distribution
    assert sliced_wasserstein(x, np.concatenate([x, x])) == pytest.approx(0.0, abs=1e-12)
    # N(0, I) vs N(0, 4 I): every projection is N(0, 1) vs N(0, 4), W_2^2 = (2 - 1)^2 = 1
    big = rng.standard_normal((20000, 3))
    assert sliced_wasserstein(big[:10000], 2 * big[10000:]) == pytest.approx(1.0, rel=0.05)


def test_coordinate_frechet_matches_population_value():
    g = anisotropic_gaussian(4, seed=1)
    gen = torch.Generator().manual_seed(0)
    a = g.sample(20000, generator=gen, dtype=torch.float64)
    b = g.sample(20000, generator=gen, dtype=torch.float64) + 0.5
    assert coordinate_frechet(a, b) == pytest.approx(4 * 0.25, rel=0.05)
    mu, cov = gaussian_mean_cov(g)
    assert frechet_distance(mu.numpy(), cov.numpy(), mu.numpy() + 0.5, cov.numpy()) == pytest.approx(1.0)


def test_oracle_nll_is_the_entropy_on_true_samples():
    g = anisotropic_gaussian(8, seed=2)
    x = g.sample(20000, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    _, cov = gaussian_mean_cov(g)
    entropy = 0.5 * float(torch.logdet(2 * math.pi * math.e * cov))
    se = math.sqrt(8 / 2) / math.sqrt(20000)
    assert abs(oracle_nll(g, x) - entropy) < 4 * se
    # samples piled on the modes have lower NLL than the truth; spread-out samples higher
    mix = eight_gaussians()
    truth = mix.sample(4000, generator=torch.Generator().manual_seed(2))
    assert oracle_nll(mix, 1.5 * truth) > oracle_nll(mix, truth)


def test_lowdim_metrics_bundle():
    mix = eight_gaussians()
    gen = torch.Generator().manual_seed(3)
    ref, good, bad = (mix.sample(1000, generator=gen) for _ in range(3))
    bad = bad * 0.7
    m_good = lowdim_metrics(good, ref, oracle=mix)
    m_bad = lowdim_metrics(bad, ref, oracle=mix)
    assert m_good.mmd < m_bad.mmd and m_good.sliced_w2 < m_bad.sliced_w2 and m_good.frechet < m_bad.frechet
    assert m_good.nll is not None and lowdim_metrics(good, ref).nll is None
