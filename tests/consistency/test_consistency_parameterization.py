"""The consistency parameterisation: the boundary condition f(x, eps) = x exactly, for every SDE and output layer."""

import pytest
import torch
from consistency_checks import make_net

import scoresde
from scoresde.consistency import OUTPUTS, ConsistencyModel


@pytest.mark.parametrize("output", OUTPUTS)
def test_boundary_condition_is_exact(sde, event_shape, output):
    model = ConsistencyModel(make_net(event_shape), sde, eps=1e-3, output=output)
    x = 3 * torch.randn(5, *event_shape)
    with torch.no_grad():
        assert torch.equal(model(x, 1e-3), x)  # bit for bit, not approximately
        assert torch.equal(model(x, torch.full((5,), 1e-3)), x)
        assert not torch.allclose(model(x, 0.5), x)  # away from eps the network acts


@pytest.mark.parametrize("output", OUTPUTS)
def test_boundary_condition_in_float64(sde, output):
    model = ConsistencyModel(make_net((2,)), sde, eps=2e-3, output=output)
    x = torch.randn(4, 2, dtype=torch.float64)
    with torch.no_grad():
        assert torch.equal(model(x, 2e-3), x)


def test_eps_output_is_one_ddim_step_of_an_eps_network():
    """With output="eps" the network's noise prediction F gives f = m(eps) (x/m - (sigma - sigma_min) F)."""
    sde, net = scoresde.VPSDE(), make_net((2,))
    cm = ConsistencyModel(net, sde, output="eps")
    sm = scoresde.ScoreModel(net, sde, prediction="eps")
    x, t = torch.randn(6, 2), 0.7
    with torch.no_grad():
        eps_hat = -sm(x, t) * sde.std(t)
        m, sig, m0, sig0 = sde.mean_scale(t), sde.sigma(t), sde.mean_scale(1e-3), sde.sigma(1e-3)
        torch.testing.assert_close(cm(x, t), m0 * (x / m - (sig - sig0) * eps_hat))


def test_edm_coefficients_match_the_paper():
    """c_skip = sd^2 / ((sigma - sigma_min)^2 + sd^2), c_out = sd (sigma - sigma_min) / sqrt(sigma^2 + sd^2)."""
    from scoresde.consistency.parameterization import EDMOutput

    sigma, sigma_min, sd = torch.tensor([0.002, 0.5, 80.0]), torch.tensor(0.002), 0.5
    c_skip, c_out = EDMOutput(sd).coefficients(sigma, sigma_min)
    torch.testing.assert_close(c_skip, sd**2 / ((sigma - 0.002) ** 2 + sd**2))
    torch.testing.assert_close(c_out, sd * (sigma - 0.002) / (sigma**2 + sd**2).sqrt())
    assert c_skip[0] == 1 and c_out[0] == 0


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [({"eps": 0.0}, "eps"), ({"eps": 1.5}, "eps"), ({"output": "score"}, "output"),
     ({"sigma_data": -1.0}, "sigma_data"), ({"num_levels": 1}, "num_levels")],
)  # fmt: skip
def test_bad_arguments_name_themselves(kwargs, match):
    with pytest.raises(ValueError, match=match):
        ConsistencyModel(make_net((2,)), scoresde.VPSDE(), **kwargs)


def test_wrong_sde_is_refused():
    model = ConsistencyModel(make_net((2,)), scoresde.VPSDE())
    with pytest.raises(ValueError, match="built for"):
        model.check_sde(scoresde.VESDE())
