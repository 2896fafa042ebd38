"""Probability-flow likelihoods against the analytic oracle and an independent scipy integration."""

import math

import numpy as np
import pytest
import torch
from conftest import SDE_FACTORIES
from scipy.integrate import solve_ivp

import scoresde
from scoresde import log_likelihood
from scoresde.oracle import Gaussian, GaussianMixture, eight_gaussians

EPS = 1e-5


def _full_gaussian(event_shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    d = math.prod(event_shape)
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    return Gaussian(torch.randn(event_shape, generator=g, dtype=torch.float64), cov=a @ a.T / d + 0.05 * torch.eye(d))


def _mixture():
    """Eight modes plus a wide anisotropic one: curved flow lines, a non-constant divergence."""
    wide = Gaussian(torch.tensor([0.5, -0.3]), cov=torch.tensor([[0.6, 0.25], [0.25, 0.3]]))
    return GaussianMixture([*eight_gaussians().components, wide], weights=[1.0] * 8 + [2.0])


class CountingScore:
    def __init__(self, score_fn):
        self.score_fn, self.calls = score_fn, 0

    def __call__(self, x, t):
        self.calls += 1
        return self.score_fn(x, t)


def test_gaussian_matches_the_exact_flow(sde, event_shape):
    """log p = prior_logp(flow(x)) + flow_logdet in closed form; also z and the two parts separately."""
    data = _full_gaussian(event_shape)
    x = data.sample(6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    res = log_likelihood(sde, data.score_fn(sde), x, divergence="exact", rtol=1e-5, atol=1e-5, eps=EPS)
    dim = math.prod(event_shape)
    z = data.flow(sde, x, EPS, sde.T)
    assert res.logp.shape == (6,) and res.z.shape == x.shape
    assert (res.logp - data.ode_log_prob(sde, x, eps=EPS)).abs().max() / dim < 1e-3
    assert (res.delta_logp - data.flow_logdet(sde, EPS, sde.T)).abs().max() / dim < 1e-3
    torch.testing.assert_close(res.z, z, rtol=0, atol=1e-3 * float(sde.prior_std))
    torch.testing.assert_close(res.prior_logp, sde.prior_logp(res.z))
    torch.testing.assert_close(res.logp, res.prior_logp + res.delta_logp)


def _scipy_reference(sde, dist, x: torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """log p by scipy's DOP853 at rtol 1e-10, divergence from one autograd.grad per coordinate (no torchdiffeq)."""
    flow = sde.reverse(dist.score_fn(sde), probability_flow=True)
    batch, dim = x.shape

    def rhs(t, state):
        y = torch.from_numpy(state[: batch * dim]).reshape(batch, dim).requires_grad_(True)
        drift = flow.sde(y, t).drift
        trace = sum(torch.autograd.grad(drift[:, i].sum(), y, retain_graph=True)[0][:, i] for i in range(dim))
        return np.concatenate([drift.detach().reshape(-1).numpy(), trace.numpy()])

    state0 = np.concatenate([x.reshape(-1).numpy(), np.zeros(batch)])
    sol = solve_ivp(rhs, (EPS, sde.T), state0, method="DOP853", rtol=1e-10, atol=1e-10)
    z = torch.from_numpy(sol.y[: batch * dim, -1]).reshape(batch, dim)
    return (sde.prior_logp(z) + torch.from_numpy(sol.y[batch * dim :, -1])).numpy(), z.numpy()


@pytest.mark.parametrize(
    "sde_name", ["vp", pytest.param("subvp", marks=pytest.mark.slow), pytest.param("ve", marks=pytest.mark.slow)]
)
def test_mixture_matches_an_independent_integration(sde_name):
    sde = SDE_FACTORIES[sde_name]()
    dist = _mixture()
    x = dist.sample(4, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    res = log_likelihood(sde, dist.score_fn(sde), x, divergence="exact", rtol=1e-5, atol=1e-5, eps=EPS)
    ref_logp, ref_z = _scipy_reference(sde, dist, x)
    assert np.abs(res.logp.numpy() - ref_logp).max() / 2 < 1e-3
    np.testing.assert_allclose(res.z.numpy(), ref_z, rtol=0, atol=1e-3 * float(sde.prior_std))


def test_mixture_log_determinant_is_the_ratio_of_exact_marginals(sde):
    """Along the exact flow, delta_logp = log p_eps(x) - log p_T(x(T)) with the mixture's exact marginals."""
    dist = _mixture()
    x = dist.sample(32, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    res = log_likelihood(sde, dist.score_fn(sde), x, divergence="exact", eps=EPS)
    expected = dist.log_prob_t(sde, x, EPS) - dist.log_prob_t(sde, res.z, sde.T)
    assert (res.delta_logp - expected).abs().max() / 2 < 1e-3


@pytest.mark.parametrize("divergence", ["rademacher", "gaussian"])
def test_hutchinson_estimators_are_unbiased(divergence):
    """400 copies of one point, each with its own probe, average to the exact answer within 4 standard errors."""
    sde = scoresde.VPSDE()
    data = _full_gaussian((4,), seed=4)
    x = data.sample(1, generator=torch.Generator().manual_seed(5), dtype=torch.float64).expand(400, 4)
    exact = float(data.ode_log_prob(sde, x[:1], eps=EPS)[0])
    gen = torch.Generator().manual_seed(6)
    one = log_likelihood(sde, data.score_fn(sde), x, divergence=divergence, generator=gen).logp
    four = log_likelihood(sde, data.score_fn(sde), x, divergence=divergence, n_probes=4, generator=gen).logp
    for est in (one, four):
        se = float(est.std()) / math.sqrt(est.numel())
        assert se > 1e-3  # the estimator is random here: the Jacobian is not diagonal
        assert abs(float(est.mean()) - exact) < 4 * se + 1e-4
    ratio = float(four.var() / one.var())  # averaging 4 probes divides the variance by 4
    assert 0.15 < ratio < 0.4


@pytest.mark.parametrize("divergence,n_probes", [("exact", 1), ("rademacher", 3), ("gaussian", 1)])
def test_nfe_counts_score_calls(divergence, n_probes):
    sde = scoresde.SubVPSDE()
    dist = eight_gaussians()
    score = CountingScore(dist.score_fn(sde))
    x = dist.sample(8, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    res = log_likelihood(sde, score, x, divergence=divergence, n_probes=n_probes, generator=torch.Generator())
    assert res.nfe == score.calls > 10


def test_fixed_step_method_makes_one_score_call_per_stage():
    sde = scoresde.VPSDE()
    data = _full_gaussian((2,), seed=8)
    score = CountingScore(data.score_fn(sde))
    x = data.sample(4, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    res = log_likelihood(sde, score, x, method="rk4", options={"step_size": 1 / 200})
    assert res.nfe == score.calls == 4 * 200
    assert (res.logp - data.ode_log_prob(sde, x, eps=EPS)).abs().max() / 2 < 1e-3


@pytest.mark.parametrize(("per_sample", "tol"), [(False, 1e-3), (True, 1e-10)])
def test_a_sample_does_not_depend_on_its_batch_beyond_the_tolerance(sde, per_sample, tol):
    """Batched and one-at-a-time answers: to solver accuracy when the batch shares its steps (the default; measured
    at rtol = atol = 1e-5: at most ~2e-4 nats per sample apart, the size of each one's error); the same to round-off
    with a step size per sample."""
    dist = _mixture()
    x = dist.sample(6, generator=torch.Generator().manual_seed(10), dtype=torch.float64)
    x[0] = torch.tensor([0.0, 0.0], dtype=torch.float64)  # between the modes: a harder trajectory
    score = dist.score_fn(sde)
    batched = log_likelihood(sde, score, x, rtol=1e-5, atol=1e-5, per_sample=per_sample)
    alone = [log_likelihood(sde, score, x[i : i + 1], rtol=1e-5, atol=1e-5, per_sample=per_sample) for i in range(6)]
    assert (batched.logp - torch.cat([a.logp for a in alone])).abs().max() / 2 < tol
    assert (batched.nfe_per_sample is not None) == per_sample


def test_float32_input_is_solved_in_float32():
    sde = scoresde.VPSDE()
    data = _full_gaussian((3, 2, 2), seed=11)
    x = data.sample(5, generator=torch.Generator().manual_seed(12), dtype=torch.float32)
    res = log_likelihood(sde, data.score_fn(sde), x)
    assert res.logp.dtype == torch.float32
    assert (res.logp.double() - data.ode_log_prob(sde, x.double(), eps=EPS)).abs().max() / 12 < 1e-3


def test_generator_makes_hutchinson_reproducible():
    sde = scoresde.VPSDE()
    data = _full_gaussian((3,), seed=13)
    x = data.sample(3, generator=torch.Generator().manual_seed(14), dtype=torch.float64)
    run = lambda seed: (
        log_likelihood(  # noqa: E731
            sde, data.score_fn(sde), x, divergence="rademacher", generator=torch.Generator().manual_seed(seed)
        ).logp
    )
    torch.testing.assert_close(run(0), run(0), rtol=0, atol=0)
    assert not torch.equal(run(0), run(1))


@pytest.mark.parametrize(
    "kwargs,exc,match",
    [
        ({"divergence": "hutch"}, ValueError, "divergence must be one of"),
        ({"divergence": "rademacher", "n_probes": 0}, ValueError, "n_probes"),
        ({"divergence": "exact", "n_probes": 2}, ValueError, "n_probes"),
        ({"method": "rk45"}, ValueError, "method must be one of"),
        ({"rtol": 0.0}, ValueError, "rtol"),
        ({"atol": -1.0}, ValueError, "atol"),
        ({"eps": 0.0}, ValueError, "eps"),
        ({"eps": 1.0}, ValueError, "eps"),
        ({"options": {"norm": max}}, ValueError, "norm"),
    ],
)
def test_bad_arguments(kwargs, exc, match):
    sde = scoresde.VPSDE()
    data = _full_gaussian((2,))
    with pytest.raises(exc, match=match):
        log_likelihood(sde, data.score_fn(sde), torch.zeros(2, 2, dtype=torch.float64), **kwargs)


def test_bad_inputs():
    sde = scoresde.VPSDE()
    score = _full_gaussian((2,)).score_fn(sde)
    with pytest.raises(ValueError, match="shape"):
        log_likelihood(sde, score, torch.zeros(3))
    with pytest.raises(ValueError, match="shape"):
        log_likelihood(sde, score, torch.zeros(0, 2))
    with pytest.raises(ValueError, match="non-finite"):
        log_likelihood(sde, score, torch.tensor([[0.0, float("nan")]]))
    with pytest.raises(TypeError, match="floating"):
        log_likelihood(sde, score, torch.zeros(2, 2, dtype=torch.long))
    with pytest.raises(TypeError, match="callable"):
        log_likelihood(sde, None, torch.zeros(2, 2))
    with pytest.raises(ValueError, match=r"score_fn returned \(2, 1\) for x of shape \(2, 2\)"):
        log_likelihood(sde, lambda x, t: x[:, :1], torch.zeros(2, 2))


def test_works_under_no_grad_and_leaves_no_graph():
    """Callers often evaluate under torch.no_grad(); the VJPs inside still work and nothing requires grad after."""
    sde = scoresde.VPSDE()
    data = _full_gaussian((3,), seed=15)
    x = data.sample(4, generator=torch.Generator().manual_seed(16), dtype=torch.float64)
    with torch.no_grad():
        res = log_likelihood(sde, data.score_fn(sde), x)
    assert not res.logp.requires_grad and not res.z.requires_grad
    torch.testing.assert_close(res.nats_per_dim, -res.logp / 3)
    assert (res.logp - data.ode_log_prob(sde, x, eps=EPS)).abs().max() / 3 < 1e-3


def _nan_after(t_bad, sde):
    """The exact score of a standard Gaussian target, NaN for t > t_bad (a network that blew up there)."""
    exact = Gaussian(torch.zeros(2, dtype=torch.float64), cov=torch.eye(2, dtype=torch.float64)).score_fn(sde)

    def score(x, t):
        out = exact(x, t)
        return torch.where((t > t_bad).reshape(-1, 1), torch.full_like(out, float("nan")), out)

    return score


@pytest.mark.parametrize(
    ("method", "options"), [("dopri5", None), ("rk4", {"step_size": 0.05}), ("euler", {"step_size": 0.05})]
)
def test_a_non_finite_score_raises_naming_the_time(method, options):
    sde = scoresde.VPSDE()
    x = torch.randn(4, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    levels = torch.tensor([[0, 16], [3, 8]], dtype=torch.float64) / 8 - 1  # on the 17-level grid of [-1, 1]
    for call in (
        lambda: log_likelihood(sde, _nan_after(0.5, sde), x, method=method, options=options),
        lambda: scoresde.bits_per_dim(sde, _nan_after(0.5, sde), levels, levels=17, method=method, options=options),
    ):
        with pytest.raises(scoresde.solvers.NonFiniteError, match=r"AugmentedODE produced non-finite values") as err:
            call()
        message = str(err.value)
        if method == "dopri5":  # one adaptive interval: the time of the first evaluation past the break
            assert "step 0 of 1 (from t=1e-05 to t=1, first at t=" in message
            assert 0.5 < float(message.split("first at t=")[1].split(")")[0]) <= 1.0
        else:  # the step of 0.05 whose stages first pass t = 0.5: rk4's last stage at its end, euler's at its start
            a, b = (float(v) for v in message.split("(from t=")[1].split(")")[0].split(" to t="))
            assert (a, b) == pytest.approx((0.45, 0.5) if method == "rk4" else (0.5, 0.55), abs=1e-4)


def test_a_score_model_refuses_another_sde():
    ve = scoresde.VESDE(sigma_min=0.01, sigma_max=5.0)
    model = scoresde.ScoreModel(scoresde.models.MLP((2,), width=8, num_blocks=1), ve).double()
    x = torch.randn(3, 2, dtype=torch.float64)
    with pytest.raises(ValueError, match=r"built for VESDE\(sigma_min=0.01, sigma_max=5.0.*used with VPSDE"):
        log_likelihood(scoresde.VPSDE(), model, x)
    with pytest.raises(ValueError, match="built for VESDE"):
        log_likelihood(scoresde.VESDE(sigma_min=0.01, sigma_max=6.0), model, x)
    same = scoresde.VESDE(sigma_min=0.01, sigma_max=5.0)  # another object, the same SDE
    assert log_likelihood(same, model, x, rtol=1e-3, atol=1e-3).logp.shape == (3,)


def test_progress_bar_over_the_time_range(capsys):
    sde = scoresde.VPSDE()
    x = torch.randn(3, 2, dtype=torch.float64)
    score = Gaussian(torch.zeros(2, dtype=torch.float64), cov=torch.eye(2, dtype=torch.float64)).score_fn(sde)
    log_likelihood(sde, score, x, rtol=1e-3, atol=1e-3, progress=True)
    err = capsys.readouterr().err
    assert "log-likelihood" in err and "/1000" in err
    log_likelihood(sde, score, x, rtol=1e-3, atol=1e-3)
    assert capsys.readouterr().err == ""  # no bar by default
    on_grid = torch.tensor([[0, 16], [3, 8]], dtype=torch.float64) / 8 - 1
    scoresde.bits_per_dim(sde, score, on_grid, levels=17, rtol=1e-3, atol=1e-3, progress=True)
    assert "log-likelihood" in capsys.readouterr().err


@pytest.mark.parametrize(("method", "stages"), [("euler", 1), ("midpoint", 2), ("heun", 2), ("rk4", 4)])
def test_fixed_step_methods_through_the_sampling_loop_with_steps_or_a_budget(method, stages):
    sde = scoresde.VPSDE()
    data = _full_gaussian((2,), seed=8)
    x = data.sample(4, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    exact = data.ode_log_prob(sde, x, eps=EPS)
    res = log_likelihood(sde, data.score_fn(sde), x, method=method, steps=60)
    assert res.nfe == 60 * stages
    assert (res.logp - exact).abs().max() < {"euler": 5e-2, "midpoint": 5e-3, "heun": 5e-3, "rk4": 1e-4}[method]
    budget = log_likelihood(sde, data.score_fn(sde), x, method=method, nfe=60 * stages + stages - 1)
    assert budget.nfe == 60 * stages
    torch.testing.assert_close(budget.logp, res.logp)


def test_an_adaptive_solve_stops_at_its_budget_and_steps_or_nfe_not_both():
    sde = scoresde.VPSDE()
    data = _full_gaussian((2,), seed=8)
    x = data.sample(4, generator=torch.Generator().manual_seed(9), dtype=torch.float64)
    with pytest.raises(scoresde.solvers.BudgetExceededError, match="nfe=5"):
        log_likelihood(sde, data.score_fn(sde), x, nfe=5)
    assert log_likelihood(sde, data.score_fn(sde), x, nfe=500).nfe <= 500
    with pytest.raises(ValueError, match="give steps or nfe, not both"):
        log_likelihood(sde, data.score_fn(sde), x, method="rk4", steps=3, nfe=12)
    with pytest.raises(ValueError, match="step_size"):
        log_likelihood(sde, data.score_fn(sde), x, method="rk4", steps=3, options={"step_size": 0.1})
    with pytest.raises(ValueError, match="only the option 'step_size'"):
        log_likelihood(sde, data.score_fn(sde), x, method="rk4", options={"perturb": True})
    with pytest.raises(ValueError, match="nfe=3 is below the minimum of 4"):
        log_likelihood(sde, data.score_fn(sde), x, method="rk4", nfe=3)
