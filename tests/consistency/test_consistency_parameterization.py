"""The consistency parameterisation: the boundary condition f(x, eps) = x exactly, for every SDE and output layer."""

import pytest
import torch
from consistency_checks import make_net

import scoresde
from scoresde.consistency import OUTPUTS, ConsistencyModel
from scoresde.consistency.build import build_consistency_model


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


@pytest.mark.parametrize("time_input", ["continuous", "log_sigma"])
def test_the_network_sees_the_teachers_time_input(sde, time_input):
    """The student calls its network with the time input its teacher's ScoreModel uses (999 t / T or ln(sigma) / 4),
    and build_consistency_model takes it from the run's model config."""
    seen = []

    class Recorder(torch.nn.Module):
        def forward(self, x, c):
            seen.append(c.clone())
            return torch.zeros_like(x)

    t = torch.tensor([0.01, 0.3, 1.0])
    ConsistencyModel(Recorder(), sde, time_input=time_input)(torch.randn(3, 2), t)
    teacher = scoresde.ScoreModel(Recorder(), sde, time_input=time_input)
    torch.testing.assert_close(seen[0], teacher.net_time(t))
    if time_input == "log_sigma":
        torch.testing.assert_close(seen[0], torch.log(sde.sigma(t)) / 4)
    config = {"net": {"_target_": "scoresde.models.MLP", "width": 8, "num_blocks": 1}, "time_input": time_input}
    built = build_consistency_model(config, {"eps": 1e-3, "output": "edm", "sigma_data": 0.5}, sde, (2,))
    assert built.time_input == time_input
    with pytest.raises(ValueError, match="time_input"):
        ConsistencyModel(Recorder(), sde, time_input="discrete")
