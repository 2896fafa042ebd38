"""The consistency parameterisation: the boundary condition f(x, eps) = x exactly, for every SDE and output layer."""

import pytest
import torch
from consistency_checks import make_net

import scoresde
from scoresde.consistency import OUTPUTS, ConsistencyModel
from scoresde.consistency.build import LEGACY_INPUT_SIGMA_DATA, build_consistency_model, resolve_sigma_data


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
    cm = ConsistencyModel(net, sde, output="eps", input_sigma_data=1.0)  # the c_in of a ScoreModel without sd
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
     ({"sigma_data": -1.0}, "sigma_data"), ({"input_sigma_data": 0.0}, "input_sigma_data"),
     ({"num_levels": 1}, "num_levels")],
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


class InputRecorder(torch.nn.Module):
    """A network that records what it is given and returns a fixed function of it (its output F is known)."""

    def __init__(self):
        super().__init__()
        self.seen = []

    def forward(self, x, c):
        self.seen.append((x.clone(), c.clone()))
        return torch.tanh(x) + torch.sin(c)[:, None]


@pytest.mark.parametrize("sigma_data", [0.25, 0.5, 2.0])
def test_student_of_an_edm_teacher_sees_the_teachers_network_input(sde, sigma_data):
    """At initialisation from an EDM teacher (sigma_data measured from the data, time input ln(sigma) / 4), the
    student's network receives exactly the teacher network's input at every t, and f(x, t) differs from m(eps) D(x; t)
    (the teacher's denoiser) by the closed form m(eps) [(c_skip - c_skip^T) x / m + (c_out - c_out^T) F], which is
    O(sigma_min) at sigma >> sigma_data."""
    from scoresde.consistency.parameterization import EDMOutput
    from scoresde.models.parameterization import EDMPrediction

    teacher_net, student_net = InputRecorder(), InputRecorder()
    teacher = scoresde.ScoreModel(teacher_net, sde, prediction="edm", sigma_data=sigma_data, time_input="log_sigma")
    block = {"sigma_data": "auto", "input_sigma_data": "auto"}
    resolve_sigma_data(block, teacher, True, torch.randn(10, 2))  # the teacher's, not the data's
    assert block == {"sigma_data": sigma_data, "input_sigma_data": sigma_data}
    student = ConsistencyModel(student_net, sde, time_input="log_sigma", **block)
    t = torch.linspace(1e-3, sde.T, 64)
    x = 3 * torch.randn(64, 2)
    with torch.no_grad():
        d_teacher, f = teacher.denoise(x, t), student(x, t)
    (x_t, c_t), (x_s, c_s) = teacher_net.seen[0], student_net.seen[0]
    assert torch.equal(x_s, x_t) and torch.equal(c_s, c_t)  # bit for bit at every t
    m, s = sde.mean_scale(t), sde.std(t)
    torch.testing.assert_close(x_s, x * torch.rsqrt(s**2 + m**2 * sigma_data**2)[:, None])
    m_eps, sigma_min, sigma = sde.mean_scale(torch.tensor(1e-3)), sde.sigma(torch.tensor(1e-3)), s / m
    c_skip, c_out = EDMOutput(sigma_data).coefficients(sigma, sigma_min)
    t_skip, t_out, _ = EDMPrediction(sigma_data).coefficients(sigma)
    gap = m_eps * ((c_skip - t_skip)[:, None] * x / m[:, None] + (c_out - t_out)[:, None] * student_net(x_s, c_s))
    torch.testing.assert_close(f - m_eps * d_teacher, gap, atol=1e-5, rtol=1e-4)
    large = sigma > 10 * sigma_data  # VP and sub-VP reach it; the tests' VE has a small sigma_max
    if large.any():
        err = (f - m_eps * d_teacher)[large].abs().max()
        assert err < 0.02 * (m_eps * d_teacher)[large].abs().max()


def test_input_sigma_data_follows_the_teacher_only_when_starting_from_its_weights():
    sde = scoresde.VPSDE()
    eps_teacher = scoresde.ScoreModel(make_net((2,)), sde, prediction="eps")  # no sigma_data: c_in with 1
    data = 0.3 * torch.randn(500, 2)
    block = {"sigma_data": "auto", "input_sigma_data": "auto"}
    resolve_sigma_data(block, eps_teacher, True, data)
    assert block["input_sigma_data"] == 1.0 and abs(block["sigma_data"] - float(data.double().std())) < 1e-12
    for teacher in (None, eps_teacher):  # consistency training, or a student from random weights: EDM's c_in
        block = {"sigma_data": "auto", "input_sigma_data": "auto"}
        resolve_sigma_data(block, teacher, False, data)
        assert block["input_sigma_data"] == block["sigma_data"] == float(data.double().std())
    block = {"sigma_data": 0.7, "input_sigma_data": 0.9}
    resolve_sigma_data(block, eps_teacher, True, data)
    assert block == {"sigma_data": 0.7, "input_sigma_data": 0.9}


def test_a_block_without_input_sigma_data_is_the_earlier_rule():
    """Consistency checkpoints written before input_sigma_data existed (block: eps, output, sigma_data 0.5) build the
    model they were trained as: c_in = 1 / sqrt(m^2 + s^2), c_skip and c_out with sigma_data = 0.5."""
    sde, config = scoresde.VPSDE(), {"net": {"_target_": "scoresde.models.MLP", "width": 8, "num_blocks": 1}}
    old = build_consistency_model(config, {"eps": 1e-3, "output": "edm", "sigma_data": 0.5}, sde, (2,))
    assert old.input_sigma_data == LEGACY_INPUT_SIGMA_DATA == 1.0 and old.sigma_data == 0.5
    t = torch.tensor([0.01, 0.5, 1.0])
    m, s = sde.mean_scale(t), sde.std(t)
    assert torch.equal(old.input_scale(t), torch.rsqrt(m**2 + s**2))
    with pytest.raises(ValueError, match="resolved"):
        build_consistency_model(config, {"eps": 1e-3, "output": "edm", "sigma_data": "auto"}, sde, (2,))
