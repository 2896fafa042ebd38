"""Bits/dim of discrete data against Gauss-Legendre quadrature of the exact ODE-model density over each bin."""

import math

import numpy as np
import pytest
import torch

import scoresde
from scoresde import Quantization, bits_per_dim
from scoresde.likelihood.baselines import GaussianBaseline
from scoresde.oracle import Gaussian

EPS = 1e-5
K, LO, HI = 5, -1.0, 1.0


def _levels_grid(levels: int, dim: int) -> torch.Tensor:
    """Every level vector of {0..K-1}^dim, shape (K^dim, dim)."""
    axes = torch.meshgrid(*[torch.arange(levels)] * dim, indexing="ij")
    return torch.stack([a.reshape(-1) for a in axes], 1)


def _bin_quadrature(log_density, quant: Quantization, k: torch.Tensor, nodes: int = 16):
    """For each level vector k (N, D): E_u[log p(y)], Var_u[log p(y)] and log P(k) = log int_bin p, by quadrature."""
    x, w = np.polynomial.legendre.leggauss(nodes)
    u1, w1 = torch.tensor((x + 1) / 2), torch.tensor(w / 2)  # nodes and weights on [0, 1]
    dim = k.shape[1]
    grid = torch.stack([g.reshape(-1) for g in torch.meshgrid(*[u1] * dim, indexing="ij")], 1)  # (M, D)
    weights = torch.stack([g.reshape(-1) for g in torch.meshgrid(*[w1] * dim, indexing="ij")], 1).prod(1)
    y = quant.dequantize(k[:, None, :].expand(-1, grid.shape[0], -1), grid[None].expand(k.shape[0], -1, -1))
    logp = log_density(y.reshape(-1, dim)).reshape(k.shape[0], -1)
    mean = (logp * weights).sum(1)
    var = (((logp - mean[:, None]) ** 2) * weights).sum(1)
    log_mass = torch.logsumexp(logp + weights.log(), 1) + quant.log_bin_volume(dim)
    return mean, var, log_mass


@pytest.mark.parametrize("dim,centred", [(1, False), (2, False), (2, True)])
def test_bits_per_dim_matches_quadrature_and_bounds_the_discrete_likelihood(dim, centred):
    """Known answer: the ODE model of a Gaussian has the closed-form density ``ode_log_prob``.

    For every level vector k, the estimate equals -(E_u log p(y) + D log w) / (D ln 2) computed by quadrature
    (within 4 Monte-Carlo standard errors of the n_dequant draws), and it upper-bounds the exact
    -log2 P(k) / D with P(k) the quadrature of p over the bin; the importance-weighted bound lies in between.
    """
    sde = scoresde.VPSDE()
    data = Gaussian(torch.tensor([0.1, -0.2][:dim]), std=torch.tensor([0.5, 0.35][:dim]))
    quant = Quantization(K, (LO, HI), centred=centred)
    k = _levels_grid(K, dim)
    x = LO + (HI - LO) * k.double() / (K - 1)  # model values of the levels (the dataset convention)
    n = 64
    gen = torch.Generator().manual_seed(0)
    res = bits_per_dim(sde, data.score_fn(sde), x, levels=K, n_dequant=n, centred_bins=centred, generator=gen, eps=EPS)
    mean_logp, var_logp, log_mass = _bin_quadrature(lambda y: data.ode_log_prob(sde, y, eps=EPS), quant, k)
    to_bits = -1.0 / (dim * math.log(2))
    expected = to_bits * (mean_logp + quant.log_bin_volume(dim))
    se = var_logp.sqrt() / math.sqrt(n) / (dim * math.log(2))
    assert res.per_sample.shape == (k.shape[0],)
    assert bool(((res.per_sample - expected).abs() < 4 * se + 1e-4).all())
    exact = to_bits * log_mass  # -log2 P(k) / D
    assert bool((expected >= exact - 1e-12).all())  # Jensen, by quadrature
    assert bool((res.per_sample_iw <= res.per_sample + 1e-12).all())
    assert bool((res.per_sample_iw - exact > -4 * se - 1e-4).all())
    assert res.mean == pytest.approx(float(res.per_sample.mean()))
    assert res.stderr == pytest.approx(float(res.per_sample.std()) / math.sqrt(k.shape[0]))
    assert res.nfe > 0
    assert 0.9 < float(log_mass.exp().sum()) <= 1.0  # disjoint bins over most of the mass


def test_score_model_and_gaussian_baseline_agree_when_their_densities_agree():
    """The ODE model of a diagonal Gaussian is the Gaussian N(-A^-1 b, s_T^2 A^-2) with x(T) = A x + b.

    With the same dequantisation noise, bits_per_dim and GaussianBaseline.bits_per_dim must then agree: this
    ties the change-of-variables term of both to one convention.
    """
    sde = scoresde.VESDE(sigma_min=0.01, sigma_max=3.0)
    std = torch.tensor([0.4, 0.7, 0.3], dtype=torch.float64)
    data = Gaussian(torch.tensor([0.2, -0.1, 0.3]), std=std)
    m0, s0 = float(sde.mean_scale(EPS)), float(sde.std(EPS))
    mT, sT = float(sde.mean_scale(1.0)), float(sde.std(1.0))
    a = ((mT**2 * std**2 + sT**2) / (m0**2 * std**2 + s0**2)).sqrt()
    b = mT * data.mean - a * m0 * data.mean
    baseline = GaussianBaseline(-b / a, torch.diag(sde.prior_std**2 / a**2), Quantization(K))
    k = torch.randint(0, K, (20, 3), generator=torch.Generator().manual_seed(1))
    x = -1 + 2 * k.double() / (K - 1)
    ours = bits_per_dim(sde, data.score_fn(sde), x, levels=K, generator=torch.Generator().manual_seed(2))
    theirs = baseline.bits_per_dim(x, generator=torch.Generator().manual_seed(2))
    torch.testing.assert_close(ours.per_sample, theirs.per_sample, atol=1e-4, rtol=0)


def test_quantization_round_trip_and_bins():
    quant = Quantization(17, (-1.0, 1.0))
    k = torch.arange(17)
    x = -1 + 2 * k.float() / 16
    torch.testing.assert_close(quant.to_levels(x[None]), k[None])
    lower = quant.dequantize(k, torch.zeros(17, dtype=torch.float64))
    upper = quant.dequantize(k, torch.ones(17, dtype=torch.float64))
    torch.testing.assert_close(upper[:-1], lower[1:])  # the bins tile [lo, hi)
    assert float(lower[0]) == -1.0 and float(upper[-1]) == pytest.approx(1.0)
    assert bool(((x.double() >= lower - 1e-12) & (x.double() <= upper + 1e-12)).all())  # level k sits in bin k
    assert quant.log_bin_volume(64) == pytest.approx(64 * math.log(2 / 17))
    # 8-bit images in [-1, 1]: the change of variables is the familiar 7 bits per dimension
    assert -Quantization(256).log_bin_volume(1) / math.log(2) == pytest.approx(7.0)


def test_centred_bins_are_centred_on_the_stored_values_and_tile():
    quant = Quantization(5, (0.0, 1.0), centred=True)
    k = torch.arange(5)
    lower = quant.dequantize(k, torch.zeros(5, dtype=torch.float64))
    upper = quant.dequantize(k, torch.ones(5, dtype=torch.float64))
    torch.testing.assert_close((lower + upper) / 2, k.double() / 4)  # centre = the model value k / (K - 1)
    torch.testing.assert_close(upper[:-1], lower[1:])
    assert quant.bin_width == 0.25 and float(lower[0]) == -0.125 and float(upper[-1]) == 1.125


def test_bits_per_dim_bad_inputs():
    sde = scoresde.VPSDE()
    score = Gaussian(torch.zeros(2), std=0.5).score_fn(sde)
    x = torch.tensor([[-1.0, 1.0]])
    with pytest.raises(ValueError, match="levels must be an integer >= 2"):
        bits_per_dim(sde, score, x, levels=1)
    with pytest.raises(ValueError, match="levels must be an integer >= 2"):
        bits_per_dim(sde, score, x, levels=3.0)
    with pytest.raises(ValueError, match="data_range"):
        bits_per_dim(sde, score, torch.tensor([[0.0, 255.0]]), levels=256)
    with pytest.raises(ValueError, match="data_range"):
        bits_per_dim(sde, score, x, levels=3, data_range=(1.0, -1.0))
    with pytest.raises(ValueError, match="not on the grid"):
        bits_per_dim(sde, score, torch.tensor([[0.3, 0.0]]), levels=3)
    with pytest.raises(ValueError, match="non-finite"):
        bits_per_dim(sde, score, torch.tensor([[float("inf"), 0.0]]), levels=3)
    with pytest.raises(ValueError, match="n_dequant"):
        bits_per_dim(sde, score, x, levels=3, n_dequant=0)
    with pytest.raises(ValueError, match="divergence"):
        bits_per_dim(sde, score, x, levels=3, divergence="none")
