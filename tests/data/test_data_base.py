"""The ArrayDataset container and the discrete-level convention."""

import pytest
import torch

from scoresde.data import (
    ArrayDataset,
    Chain,
    RandomHorizontalFlip,
    UniformDequantization,
    dequantize,
    from_levels,
    max_pairwise_distance,
    to_levels,
)


@pytest.mark.parametrize("levels", [2, 17, 256])
@pytest.mark.parametrize("data_range", [(-1.0, 1.0), (0.0, 1.0)])
def test_levels_round_trip(levels, data_range):
    k = torch.arange(levels)
    x = from_levels(k, levels, data_range)
    assert x.dtype == torch.float32
    assert float(x[0]) == data_range[0] and float(x[-1]) == data_range[1]
    assert torch.equal(to_levels(x, levels, data_range), k)
    # model value -> level -> model value is the identity on the grid, rounding in between
    half = 0.49 * (data_range[1] - data_range[0]) / (levels - 1)
    assert torch.equal(to_levels(x + half, levels, data_range), k.clamp(max=levels - 1))
    assert torch.equal(to_levels(x - half, levels, data_range), k)
    assert torch.equal(to_levels(torch.tensor([-5.0, 5.0]), levels, data_range), torch.tensor([0, levels - 1]))


def test_dequantize_fills_each_bin():
    k = torch.tensor([0, 1, 16])
    torch.testing.assert_close(dequantize(k, torch.zeros(3), 17), torch.tensor([-1.0, -1 + 2 / 17, -1 + 32 / 17]))
    torch.testing.assert_close(dequantize(k, torch.ones(3), 17), torch.tensor([-1 + 2 / 17, -1 + 4 / 17, 1.0]))


def test_bad_levels_and_range():
    with pytest.raises(ValueError, match="levels"):
        from_levels(torch.arange(3), 1)
    with pytest.raises(ValueError, match="data_range"):
        to_levels(torch.zeros(3), 4, (1.0, -1.0))


def _toy(**kwargs):
    return ArrayDataset(name="toy", train=torch.zeros(5, 1, 2, 2), test=torch.ones(3, 1, 2, 2), **kwargs)


def test_container():
    ds = _toy(levels=4, train_labels=torch.arange(5), test_labels=torch.arange(3), num_classes=5)
    assert ds.event_shape == (1, 2, 2)
    assert ds.split("test") is ds.test and ds.labels("train") is ds.train_labels
    assert ds.data_range == (-1.0, 1.0)
    assert torch.equal(ds.to_levels(ds.from_levels(torch.arange(4))), torch.arange(4))
    with pytest.raises(ValueError, match="split name must be one of"):
        ds.split("valid")
    with pytest.raises(ValueError, match="continuous"):
        _toy().to_levels(torch.zeros(1))
    with pytest.raises(TypeError, match="float32"):
        ArrayDataset(name="x", train=torch.zeros(5, 2, dtype=torch.float64), test=torch.zeros(3, 2))
    with pytest.raises(ValueError, match="event shapes differ"):
        ArrayDataset(name="x", train=torch.zeros(5, 2), test=torch.zeros(3, 3))
    with pytest.raises(ValueError, match="train_labels"):
        _toy(train_labels=torch.arange(4))


def test_max_pairwise_distance():
    x = torch.tensor([[0.0, 0.0], [3.0, 4.0], [1.0, 1.0], [-3.0, -4.0]])
    assert max_pairwise_distance(x, chunk=3) == pytest.approx(10.0)
    assert max_pairwise_distance(x, max_points=2) <= 10.0


def test_random_horizontal_flip():
    x = torch.arange(2 * 3 * 2 * 4, dtype=torch.float32).reshape(2, 3, 2, 4)
    assert torch.equal(RandomHorizontalFlip(p=1.0)(x), x.flip(-1))
    assert torch.equal(RandomHorizontalFlip(p=0.0)(x), x)
    g = torch.Generator().manual_seed(0)
    out = RandomHorizontalFlip()(x[:1].expand(1000, 3, 2, 4), generator=g)
    flipped = (out == x[:1].flip(-1)).flatten(1).all(1)
    kept = (out == x[:1]).flatten(1).all(1)
    assert bool((flipped | kept).all()) and 400 < int(flipped.sum()) < 600
    with pytest.raises(ValueError, match="p must lie"):
        RandomHorizontalFlip(p=2.0)


def test_uniform_dequantization_fills_the_bins_bits_per_dim_integrates_over():
    """Each value becomes a uniform draw in the bin of width w = (hi - lo) / (K - 1) centred on its stored value,
    the centred bins of scoresde.likelihood.quantization.Quantization (the bits/dim bound's with centred_bins=True),
    so rounding to the nearest level recovers every value."""
    from scoresde.likelihood.quantization import Quantization

    levels, data_range = 17, (-1.0, 1.0)
    k = torch.arange(levels).repeat(2000)
    x = from_levels(k, levels, data_range).reshape(-1, 1, 1, 1)
    transform = UniformDequantization(levels, data_range)
    y = transform(x, generator=torch.Generator().manual_seed(0))
    assert y.shape == x.shape and y.dtype == x.dtype
    quant = Quantization(levels, data_range, centred=True)
    u = ((y.double().flatten() - quant.lo) / quant.bin_width - k + 0.5).numpy()
    assert u.min() >= 0 and u.max() < 1 + 1e-6
    assert abs(u.mean() - 0.5) < 0.01 and abs(u.var() - 1 / 12) < 0.005  # U[0, 1)
    assert torch.equal(to_levels(y, levels, data_range).flatten(), k)  # samples stay in data coordinates
    again = transform(x, generator=torch.Generator().manual_seed(0))
    assert torch.equal(y, again) and not torch.equal(y, transform(x, generator=torch.Generator().manual_seed(1)))
    flip_then = Chain(RandomHorizontalFlip(p=1.0), transform)
    img = from_levels(torch.arange(8).reshape(1, 1, 2, 4), levels, data_range)
    out = flip_then(img, generator=torch.Generator().manual_seed(0))
    assert torch.equal(to_levels(out, levels, data_range), torch.arange(8).reshape(1, 1, 2, 4).flip(-1))
    with pytest.raises(ValueError, match="levels must be an integer >= 2"):
        UniformDequantization(1)
    with pytest.raises(ValueError, match="data_range"):
        UniformDequantization(17, (1.0, -1.0))


def test_level_convention_agrees_with_the_likelihood_quantization():
    """Loaders (from_levels) and bits/dim (scoresde.likelihood.quantization) share one convention."""
    from scoresde.likelihood.quantization import Quantization

    for levels, data_range in [(17, (-1.0, 1.0)), (256, (-1.0, 1.0)), (256, (0.0, 1.0))]:
        k = torch.arange(levels)
        q = Quantization(levels, data_range)
        assert torch.equal(q.to_levels(from_levels(k, levels, data_range)), k)
        u = torch.rand(levels, dtype=torch.float64)
        torch.testing.assert_close(q.dequantize(k, u), dequantize(k, u, levels, data_range))
