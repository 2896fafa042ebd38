"""Multistep consistency sampling (Algorithm 1) through scoresde.sample, with the oracle's exact flow map as f."""

import pytest
import torch
from consistency_checks import ExactFlowMap, make_net

import scoresde
from scoresde.consistency import ConsistencyModel, ConsistencySampler
from scoresde.oracle import anisotropic_gaussian, gaussian_mean_cov


def _cov_error(x, data, sde, t):
    """max |Cov(x) - Cov(p_t)| relative to the largest variance."""
    _, cov = gaussian_mean_cov(data.marginal(sde, t))
    return float((torch.cov(x.T.double()) - cov).abs().max() / cov.diagonal().max())


@pytest.mark.parametrize("steps", [1, 2, 4])
def test_exact_flow_map_samples_the_data_marginal(sde, steps):
    """With the exact consistency function every step lands on p_{t_{i+1}} and the last on p_eps, for 1, 2, 4 steps."""
    data = anisotropic_gaussian(2)
    x, info = scoresde.sample(sde, ExactFlowMap(data, sde), (20000, 2), solver="consistency", steps=steps,
                              generator=torch.Generator().manual_seed(0), trajectory=True)  # fmt: skip
    assert info.nfe == steps and info.steps == steps and info.extras["denoise"] is False
    assert _cov_error(x, data, sde, 1e-3) < 0.05
    for i in range(1, steps):  # the re-noised states are samples of the marginals at the grid times
        assert _cov_error(info.trajectory[i], data, sde, float(info.times[i])) < 0.05


def test_one_step_is_f_of_the_prior_draw():
    sde, data = scoresde.VESDE(sigma_min=0.01, sigma_max=5.0), anisotropic_gaussian(2)
    f = ExactFlowMap(data, sde)
    start = sde.prior_sampling((8, 2), generator=torch.Generator().manual_seed(1))
    x, info = scoresde.sample(sde, f, None, solver="consistency", steps=1, start=start)
    torch.testing.assert_close(x, f(start, sde.T))
    assert info.nfe == 1


def test_nfe_budget_counts_network_calls():
    sde = scoresde.VPSDE()
    model = ConsistencyModel(make_net((2,)), sde)
    x, info = scoresde.sample(sde, model, (5, 2), solver="consistency", nfe=3)
    assert info.nfe == 3 and x.shape == (5, 2)


def test_fixed_sigmas_place_the_intermediate_times():
    sde = scoresde.VESDE(sigma_min=0.01, sigma_max=5.0)
    solver = ConsistencySampler(sigmas=[0.821])
    times = solver.plan(sde, 1e-3)
    assert len(times) == 3 and float(sde.sigma(float(times[1]))) == pytest.approx(0.821, rel=1e-6)
    with pytest.raises(ValueError, match="sigmas"):
        solver.plan(sde, 1e-3, steps=4)
    with pytest.raises(ValueError, match="sigmas"):
        ConsistencySampler(sigmas=[0.5, 1.0])


def test_steps_zero_is_refused():
    sde = scoresde.VPSDE()
    with pytest.raises(ValueError, match="steps"):
        scoresde.sample(sde, ConsistencyModel(make_net((2,)), sde), (2, 2), solver="consistency", steps=0)


def test_model_and_solver_kinds_must_agree():
    sde = scoresde.VPSDE()
    cm = ConsistencyModel(make_net((2,)), sde)
    with pytest.raises(TypeError, match="consistency model"):
        scoresde.sample(sde, cm, (2, 2), solver="ode", steps=2)
    with pytest.raises(TypeError, match="ScoreModel"):
        scoresde.sample(sde, scoresde.ScoreModel(make_net((2,)), sde), (2, 2), solver="consistency", steps=1)
    with pytest.raises(ValueError, match="eps"):
        scoresde.sample(sde, cm, (2, 2), solver="consistency", steps=1, eps=1e-2)
    with pytest.raises(ValueError, match="built for"):
        scoresde.sample(scoresde.VESDE(), cm, (2, 2), solver="consistency", steps=1)


def test_a_consistency_model_has_no_score_for_likelihoods():
    sde = scoresde.VPSDE()
    cm = ConsistencyModel(make_net((2,)), sde)
    with pytest.raises(TypeError, match="consistency model"):
        scoresde.log_likelihood(sde, cm, torch.randn(3, 2))
