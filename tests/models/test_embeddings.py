"""Time embeddings: closed-form values, boundedness, and that nearby times are told apart."""

import math

import pytest
import torch

from scoresde.models import GaussianFourierEmbedding, SinusoidalEmbedding


def test_sinusoidal_matches_formula():
    emb = SinusoidalEmbedding(8, max_period=10_000.0)
    t = torch.tensor([0.0, 1.0, 37.5])
    out = emb(t)
    w = torch.tensor([10_000.0 ** (-k / 4) for k in range(4)])
    expected = torch.cat([torch.sin(t[:, None] * w), torch.cos(t[:, None] * w)], 1)
    torch.testing.assert_close(out, expected)
    assert torch.equal(out[0], torch.tensor([0.0] * 4 + [1.0] * 4))


@pytest.mark.parametrize("cls", [SinusoidalEmbedding, GaussianFourierEmbedding])
def test_bounded_distinct_and_deterministic(cls):
    emb = cls(64)
    t = torch.arange(0, 1000, dtype=torch.float32)
    out = emb(t)
    assert out.shape == (1000, 64)
    # sin^2 + cos^2 = 1 pairwise, so every embedding has norm sqrt(dim / 2)
    torch.testing.assert_close(out.norm(dim=1), torch.full((1000,), math.sqrt(32.0)))
    # neighbouring levels are distinguishable and far levels more so
    d = torch.cdist(out, out)
    assert d[torch.arange(999), torch.arange(1, 1000)].min() > 0.05
    assert d[0, 999] > d[0, 1]
    torch.testing.assert_close(cls(64)(t), out)


def test_fourier_frequencies_are_a_saved_buffer():
    emb = GaussianFourierEmbedding(16, scale=16.0)
    assert "W" in emb.state_dict() and not list(emb.parameters())
    assert emb.W.std() > 5


@pytest.mark.parametrize("dim", [0, 3, 2.0])
def test_rejects_odd_or_bad_dim(dim):
    with pytest.raises(ValueError, match="dim"):
        SinusoidalEmbedding(dim)
