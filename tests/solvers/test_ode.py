"""The probability-flow ODE solver against the oracle's exact flow map."""

import math

import pytest
import torch

import scoresde
from scoresde.oracle import Gaussian
from scoresde.solvers import ODE_METHODS, ProbabilityFlowODE

DATA = Gaussian(torch.tensor([1.0, -0.5]), cov=torch.tensor([[0.3, 0.12], [0.12, 0.1]]))
EPS = 1e-3


def _start(data, sde, n=64, seed=0):
    return data.marginal(sde, sde.T).sample(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _ode(data, sde, x_T, **options):
    return scoresde.sample(sde, data.score_fn(sde), None, start=x_T, solver="ode", denoise=False, **options)


@pytest.mark.parametrize("event_shape", [(2,), (2, 3, 3)])
def test_dopri5_reproduces_the_exact_flow_map(sde, event_shape):
    """MSE below 1e-6 of the data variance at rtol = atol = 1e-6 (issue 3)."""
    g = torch.Generator().manual_seed(3)
    data = (
        DATA
        if event_shape == (2,)
        else Gaussian(torch.randn(event_shape, generator=g), std=0.2 + torch.rand(event_shape, generator=g))
    )
    x_T = _start(data, sde)
    x, info = _ode(data, sde, x_T, method="dopri5", rtol=1e-6, atol=1e-6)
    exact = data.flow(sde, x_T, sde.T, EPS)
    mse = float((x - exact).pow(2).mean())
    assert mse < 1e-6 * float(data.eigvals.mean())
    assert info.steps == 1 and info.nfe > 10


@pytest.mark.parametrize("method", ["bosh3", "fehlberg2", "adaptive_heun"])
def test_every_adaptive_method_reproduces_the_exact_flow_map(method):
    """The other adaptive methods of ODE_METHODS (shared by sampling, encoding and the likelihood) on the 2-D case."""
    sde = scoresde.VPSDE()
    x_T = _start(DATA, sde, n=16)
    x, info = _ode(DATA, sde, x_T, method=method, rtol=1e-7, atol=1e-7)
    assert float((x - DATA.flow(sde, x_T, sde.T, EPS)).abs().max()) < 1e-4 and info.nfe > 10
    assert ProbabilityFlowODE(method).adaptive


@pytest.mark.parametrize(
    "method, steps",
    [
        ("euler", [50, 100, 200, 400]),
        ("midpoint", [25, 50, 100, 200]),
        ("heun", [25, 50, 100, 200]),
        ("rk4", [20, 40, 80, 160]),
    ],  # fmt: skip
)
def test_fixed_step_methods_converge_at_their_order(sde, method, steps):
    """The fitted slope of log error against log step count is -order (halving the step divides by 2^order)."""
    x_T = _start(DATA, sde)
    exact = DATA.flow(sde, x_T, sde.T, EPS)
    errors = []
    for n in steps:
        x, info = _ode(DATA, sde, x_T, method=method, steps=n)
        stages = {"euler": 1, "midpoint": 2, "heun": 2, "rk4": 4}[method]
        assert info.nfe == stages * n
        errors.append(float((x - exact).pow(2).mean().sqrt()))
    log_n = torch.tensor(steps, dtype=torch.float64).log()
    log_e = torch.tensor(errors, dtype=torch.float64).log()
    slope = float(((log_n - log_n.mean()) * (log_e - log_e.mean())).sum() / (log_n - log_n.mean()).pow(2).sum())
    assert abs(-slope - ODE_METHODS[method].order) < 0.3, f"fitted order {-slope:.2f}, errors {errors}"


def test_deterministic_given_start(sde):
    x_T = _start(DATA, sde, n=8)
    a, _ = _ode(DATA, sde, x_T, method="rk4", steps=20)
    b, _ = _ode(DATA, sde, x_T, method="rk4", steps=20)
    assert torch.equal(a, b)


def test_adaptive_output_intervals_are_the_trajectory(sde):
    """With steps=k an adaptive method returns the states at k+1 grid times, each on the exact flow."""
    x_T = _start(DATA, sde, n=16)
    x, info = _ode(DATA, sde, x_T, method="dopri5", rtol=1e-6, atol=1e-6, steps=4, trajectory=True)
    assert info.trajectory.shape == (5, 16, 2)
    for t, state in zip(info.times.tolist(), info.trajectory, strict=True):
        torch.testing.assert_close(state, DATA.flow(sde, x_T, sde.T, t), rtol=0, atol=1e-4)


@pytest.mark.parametrize("method", ["dopri5", "rk4"])
def test_nan_mid_trajectory_names_the_step_and_time(sde, method):
    def bad(x, t):
        return torch.where(t[:, None] < 0.5, float("nan"), DATA.score(sde, x, t))

    x_T = _start(DATA, sde, n=4)
    with pytest.raises(FloatingPointError, match=r"step (\d+) .*t="):
        scoresde.sample(sde, bad, None, start=x_T, solver="ode", method=method, steps=4, denoise=False)


def test_rejects_unknown_method_and_bad_tolerances():
    with pytest.raises(ValueError, match="method must be one of .*dopri5"):
        ProbabilityFlowODE(method="rk45")
    with pytest.raises(ValueError, match="rtol"):
        ProbabilityFlowODE(rtol=0)
    assert math.isclose(ProbabilityFlowODE("rk4").order, 4)


@pytest.mark.parametrize("method, torchdiffeq_name", [("euler", "euler"), ("midpoint", "midpoint"), ("heun", "heun2"),
                                                      ("rk4", "rk4")])  # fmt: skip
def test_fixed_step_methods_are_torchdiffeqs(sde, method, torchdiffeq_name):
    """The hand-written tableaus take the same steps as torchdiffeq's methods of the same name on the same grid."""
    from torchdiffeq import odeint

    x_T = _start(DATA, sde, n=8)
    x, info = _ode(DATA, sde, x_T, method=method, steps=7)
    times = info.times
    drift = lambda t, y: sde.reverse(DATA.score_fn(sde), probability_flow=True).sde(y, t.expand(8)).drift  # noqa: E731
    ref = odeint(drift, x_T, times, method=torchdiffeq_name)[-1]
    torch.testing.assert_close(x, ref, rtol=1e-12, atol=1e-12)
