"""Baseline density models: hand-computed answers, a known entropy, and the digits."""

import math

import pytest
import torch

from scoresde import Quantization
from scoresde.likelihood.baselines import GaussianBaseline, PixelCategorical
from scoresde.oracle import anisotropic_gaussian


def test_pixel_categorical_by_hand():
    quant = Quantization(3, (0.0, 1.0))  # levels 0, 1, 2 are the values 0, 0.5, 1
    train = torch.tensor([[0, 1], [0, 2], [1, 1]]).double() / 2
    model = PixelCategorical.fit(train, quant)
    # add-one: column 0 counts (2, 1, 0) -> (3, 2, 1) / 6; column 1 counts (0, 2, 1) -> (1, 3, 2) / 6
    torch.testing.assert_close(model.log_probs.exp(), torch.tensor([[3, 2, 1], [1, 3, 2]]).double() / 6)
    res = model.bits_per_dim(torch.tensor([[0.0, 1.0], [1.0, 0.0]]))
    expected = torch.tensor([-math.log2(3 / 6 * 2 / 6) / 2, -math.log2(1 / 6 * 1 / 6) / 2], dtype=torch.float64)
    torch.testing.assert_close(res.per_sample, expected)
    assert res.mean == pytest.approx(float(expected.mean()))
    assert res.stderr == pytest.approx(float(expected.std()) / math.sqrt(2))


def test_gaussian_baseline_recovers_the_entropy_of_continuous_data():
    """Fitted to 20000 samples of a known 8-D Gaussian, held-out nats/dim is its differential entropy per dim."""
    data = anisotropic_gaussian(8)
    gen = torch.Generator().manual_seed(0)
    model = GaussianBaseline.fit(data.sample(20000, generator=gen, dtype=torch.float64))
    res = model.nats_per_dim(data.sample(20000, generator=gen, dtype=torch.float64))
    entropy = 0.5 * math.log(2 * math.pi * math.e) + 0.5 * float(data.eigvals.log().mean())
    assert abs(res.mean - entropy) < 4 * res.stderr + 2e-3


def test_gaussian_baseline_bits_per_dim_formula():
    """bits/dim = -(E_u log N(y) + D log w) / (D ln 2) with y the dequantised data in the model range."""
    quant = Quantization(4, (-1.0, 1.0))
    gen = torch.Generator().manual_seed(1)
    train = (torch.randint(0, 4, (500, 3), generator=gen).double() * 2 / 3) - 1
    model = GaussianBaseline.fit(train, quant, generator=gen)
    x = train[:5]
    res = model.bits_per_dim(x, n_dequant=2, generator=torch.Generator().manual_seed(2))
    replay = torch.Generator().manual_seed(2)
    k = quant.to_levels(x)
    logp = (
        sum(
            model.dist.log_prob(quant.dequantize(k, torch.rand(k.shape, generator=replay, dtype=torch.float64)))
            for _ in range(2)
        )
        / 2
    )
    torch.testing.assert_close(res.per_sample, -(logp + 3 * math.log(0.5)) / (3 * math.log(2)))
    with pytest.raises(ValueError, match="n_dequant"):
        model.bits_per_dim(x, n_dequant=0)
    with pytest.raises(ValueError, match="discrete"):
        GaussianBaseline.fit(train).bits_per_dim(x)


def test_digits_baselines():
    """The digits, 17 levels, first 1500 images for training: about 2.4 and 3.0 bits/dim on the rest."""
    from scoresde.data.digits import load_digit_arrays

    x = torch.as_tensor(load_digit_arrays()[0], dtype=torch.float64).flatten(1) / 8 - 1  # levels 0..16 -> [-1, 1]
    quant = Quantization(17)
    train, test = x[:1500], x[1500:]
    cat = PixelCategorical.fit(train, quant).bits_per_dim(test)
    gauss = GaussianBaseline.fit(train, quant, generator=torch.Generator().manual_seed(0)).bits_per_dim(
        test, n_dequant=4, generator=torch.Generator().manual_seed(1)
    )
    assert 2.2 < cat.mean < 2.7
    assert 2.8 < gauss.mean < 3.3
    assert cat.mean < gauss.mean


def test_baselines_reject_bad_data():
    quant = Quantization(17)
    with pytest.raises(ValueError, match="data_range"):
        PixelCategorical.fit(torch.full((3, 4), 16.0), quant)
    with pytest.raises(ValueError, match="shape"):
        PixelCategorical.fit(torch.zeros(4), quant)
    with pytest.raises(ValueError, match="log_probs"):
        PixelCategorical(torch.zeros(4, 3), quant)
    model = PixelCategorical.fit(torch.zeros(3, 4), quant)
    with pytest.raises(ValueError, match="coordinates"):
        model.log_prob(torch.zeros(2, 5))
