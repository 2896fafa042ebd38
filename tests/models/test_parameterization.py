"""The parameterisation wrapper against the oracle: exact eps / x0 / score networks give the exact score."""

import pytest
import torch

import scoresde
from scoresde.models import ScoreModel, count_parameters
from scoresde.oracle import Gaussian


class OracleNet(torch.nn.Module):
    """A 'network' that returns the exact eps, x0 or score of a Gaussian, undoing the wrapper's input scalings.

    Tweedie: E[x0 | x_t] = (x_t + s^2 score) / m, and E[z | x_t] = -s score.
    """

    def __init__(self, data: Gaussian, sde, prediction: str, num_levels: int, scale_input: bool):
        super().__init__()
        self.data, self.sde, self.prediction = data, sde, prediction
        self.num_levels, self.scale_input = num_levels, scale_input
        self.seen_time = None

    def forward(self, x_in, c):
        self.seen_time = c
        t = c * self.sde.T / (self.num_levels - 1)
        m, s = self.sde.mean_scale(t), self.sde.std(t)
        c_in = torch.rsqrt(m**2 + s**2) if self.scale_input else torch.ones_like(t)
        x = x_in / scoresde._utils.append_dims(c_in, x_in.ndim)
        score = self.data.score(self.sde, x, t)
        m, s = (scoresde._utils.append_dims(v, x.ndim) for v in (m, s))
        return {"score": score, "eps": -s * score, "x0": (x + s**2 * score) / m}[self.prediction]


def _data(event_shape):
    g = torch.Generator().manual_seed(3)
    return Gaussian(
        torch.randn(event_shape, generator=g, dtype=torch.float64), std=0.2 + torch.rand(event_shape, generator=g)
    )


@pytest.mark.parametrize("prediction", ["score", "eps", "x0"])
@pytest.mark.parametrize("scale_input", [True, False])
def test_exact_network_gives_exact_score(sde, event_shape, prediction, scale_input):
    data = _data(event_shape)
    net = OracleNet(data, sde, prediction, num_levels=1000, scale_input=scale_input)
    model = ScoreModel(net, sde, prediction=prediction, scale_input=scale_input)
    x = 2 * torch.randn(6, *event_shape, dtype=torch.float64)
    t = torch.tensor([1e-3, 0.05, 0.2, 0.5, 0.8, 1.0], dtype=torch.float64)
    torch.testing.assert_close(model(x, t), data.score(sde, x, t))
    torch.testing.assert_close(net.seen_time, 999 * t)


@pytest.mark.parametrize("prediction", ["eps", "x0"])
def test_discrete_time_sees_rounded_levels(sde, prediction):
    data = _data((2,))
    num_levels = 11
    net = OracleNet(data, sde, prediction, num_levels=num_levels, scale_input=True)
    model = ScoreModel(net, sde, prediction=prediction, time_input="discrete", num_levels=num_levels)
    t = torch.tensor([0.0, 0.049, 0.051, 0.3, 0.96, 1.0], dtype=torch.float64)
    x = torch.randn(6, 2, dtype=torch.float64)
    model(x, t)
    torch.testing.assert_close(net.seen_time, torch.tensor([0.0, 0.0, 1.0, 3.0, 10.0, 10.0], dtype=torch.float64))
    # on the grid of levels the discrete model is exact too
    t_grid = torch.arange(1, num_levels, dtype=torch.float64) / (num_levels - 1)
    x = torch.randn(t_grid.shape[0], 2, dtype=torch.float64)
    torch.testing.assert_close(model(x, t_grid), data.score(sde, x, t_grid))


def test_scale_input_is_identity_for_vp():
    sde = scoresde.VPSDE()
    model = ScoreModel(torch.nn.Identity(), sde)
    t = torch.linspace(1e-3, 1, 7, dtype=torch.float64)
    torch.testing.assert_close(model.input_scale(t), torch.ones_like(t))
    ve = ScoreModel(torch.nn.Identity(), scoresde.VESDE(sigma_max=10.0))
    assert float(ve.input_scale(torch.tensor([1.0]))) == pytest.approx(1 / (1 + 10.0**2 - 0.01**2) ** 0.5)


def test_wrapper_keeps_net_and_sde_and_counts_parameters():
    sde = scoresde.VPSDE()
    net = scoresde.models.MLP((3,), width=16, num_blocks=1, embed_dim=8)
    model = ScoreModel(net, sde)
    assert model.net is net and model.sde is sde
    assert count_parameters(model) == count_parameters(net) == sum(p.numel() for p in net.parameters())
    assert set(dict(model.named_parameters())) == {"net." + k for k, _ in net.named_parameters()}
    assert model(torch.randn(4, 3), 0.5).shape == (4, 3)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"prediction": "noise"}, "prediction must be one of"),
        ({"time_input": "index"}, "time_input must be one of"),
        ({"num_levels": 1}, "num_levels"),
    ],
)
def test_bad_arguments_are_named(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ScoreModel(torch.nn.Identity(), scoresde.VPSDE(), **kwargs)


def test_bad_sde_and_bad_net_output():
    with pytest.raises(TypeError, match="sde must be"):
        ScoreModel(torch.nn.Identity(), "vp")
    model = ScoreModel(lambda x, c: x.flatten(1), scoresde.VPSDE())
    with pytest.raises(ValueError, match="net returned shape"):
        model(torch.randn(2, 1, 2, 2), 0.5)


def test_float64_input_runs_a_float32_network():
    sde = scoresde.VPSDE()
    net = scoresde.models.MLP((2,), width=16, num_blocks=1, embed_dim=8)
    model = ScoreModel(net, sde)
    x = torch.randn(3, 2, dtype=torch.float64)
    out = model(x, torch.full((3,), 0.3, dtype=torch.float64))
    assert out.dtype == torch.float64
    torch.testing.assert_close(out.float(), model(x.float(), torch.full((3,), 0.3)))
