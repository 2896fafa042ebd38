"""The residual MLP: shapes, time dependence, and that it can fit a known score."""

import pytest
import torch

from scoresde.models import MLP


def _randomise(module, seed=0):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in module.parameters():
            p.copy_(0.3 * torch.randn(p.shape, generator=g))


@pytest.mark.parametrize("embedding", ["sinusoidal", "fourier"])
@pytest.mark.parametrize("event_shape", [(2,), (5,), (1, 2, 2)])
def test_shape_and_time_dependence(event_shape, embedding):
    net = MLP(event_shape, width=32, num_blocks=2, time_embedding=embedding, embed_dim=16)
    x = torch.randn(7, *event_shape)
    # the last layer is zero-initialised: the fresh network outputs exactly zero
    assert torch.equal(net(x, torch.full((7,), 10.0)), torch.zeros_like(x))
    _randomise(net)
    a, b = net(x, torch.full((7,), 10.0)), net(x, torch.full((7,), 500.0))
    assert a.shape == x.shape
    assert (a - b).abs().max() > 1e-3


def test_rejects_bad_input():
    with pytest.raises(ValueError, match="event_shape"):
        MLP(())
    with pytest.raises(ValueError, match="width"):
        MLP((2,), width=0)
    with pytest.raises(ValueError, match="time_embedding must be one of"):
        MLP((2,), time_embedding="learned")
    with pytest.raises(ValueError, match="must have shape"):
        MLP((2,))(torch.randn(3, 3), torch.zeros(3))


def test_fits_a_linear_time_dependent_target():
    """A few hundred Adam steps bring the MLP close to f(x, c) = x * (1 + c/999): it is trainable end to end."""
    torch.manual_seed(0)
    net = MLP((2,), width=64, num_blocks=2)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    for _ in range(300):
        x, c = torch.randn(128, 2), 999 * torch.rand(128)
        loss = ((net(x, c) - x * (1 + c[:, None] / 999)) ** 2).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    x, c = torch.randn(512, 2), 999 * torch.rand(512)
    assert ((net(x, c) - x * (1 + c[:, None] / 999)) ** 2).mean() < 0.02
