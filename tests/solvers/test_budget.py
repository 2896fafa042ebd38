"""The shared solver interface: an nfe budget is never exceeded, every solver walks every named grid."""

import math

import pytest
import torch

import scoresde
from scoresde.oracle import Gaussian
from scoresde.solvers import SOLVERS, BudgetExceededError, grids

DATA = Gaussian(torch.tensor([1.0, -0.5]), std=torch.tensor([0.5, 0.3]))


@pytest.mark.parametrize("name", sorted(SOLVERS))
@pytest.mark.parametrize("nfe", [1, 3, 10, 25, 250])
def test_budget_is_never_exceeded(name, nfe):
    sde = scoresde.VPSDE()
    solver = SOLVERS[name]()
    x_T = torch.randn(4, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    try:
        x, info = scoresde.sample(sde, DATA.score_fn(sde), None, start=x_T, solver=solver, nfe=nfe, denoise=False)
    except ValueError as err:  # a budget below the cost of one step is refused up front, naming it
        assert nfe < solver.nfe_per_step and f"nfe={nfe} is below the minimum of {solver.nfe_per_step}" in str(err)
        return
    except BudgetExceededError:  # only an adaptive solver cannot plan its cost
        assert name == "ode"
        return
    assert 1 <= info.nfe <= nfe and bool(torch.isfinite(x).all())
    if name not in ("ode", "adaptive_sde"):  # fixed-cost solvers leave less than one step of the budget unspent
        assert info.nfe > nfe - solver.nfe_per_step


@pytest.mark.parametrize("denoise", [False, True])
def test_denoising_call_is_outside_the_budget(denoise):
    sde = scoresde.VESDE(sigma_min=0.01, sigma_max=5.0)
    _, info = scoresde.sample(sde, DATA.score_fn(sde), (3, 2), solver="edm_heun", nfe=11, denoise=denoise)
    assert info.nfe == 10 + denoise and info.steps == 5


def test_steps_and_nfe_are_exclusive():
    sde = scoresde.VPSDE()
    with pytest.raises(ValueError, match="give steps or nfe, not both"):
        scoresde.sample(sde, DATA.score_fn(sde), (3, 2), solver="euler_maruyama", steps=4, nfe=4)
    with pytest.raises(ValueError, match="nfe must be an integer >= 1"):
        scoresde.sample(sde, DATA.score_fn(sde), (3, 2), solver="euler_maruyama", nfe=0)


@pytest.mark.parametrize("name", sorted(SOLVERS))
@pytest.mark.parametrize("grid", sorted(grids.GRIDS))
def test_every_solver_walks_every_grid(sde, name, grid):
    solver = SOLVERS[name](grid=grid, rho=5.0)
    steps = 4
    _, info = scoresde.sample(sde, DATA.score_fn(sde), (3, 2), solver=solver, steps=steps, denoise=False)
    torch.testing.assert_close(info.times, grids.make(grid, sde, steps, 1e-3, rho=5.0))
    assert info.extras["grid"] == grid


def test_default_grid_and_bad_grid():
    assert SOLVERS["edm_heun"]().grid_kind == "karras" and SOLVERS["euler_maruyama"]().grid_kind == "uniform"
    names = r"\['karras', 'log_snr', 'logistic', 'logistic_mixed', 'logistic_narrow', 'quadratic', 'uniform'\]"
    with pytest.raises(ValueError, match=r"grid must be one of " + names):
        SOLVERS["pc"](grid="cosine")
    with pytest.raises(ValueError, match="rho must be a positive finite number"):
        SOLVERS["euler_maruyama"](grid="karras", rho=-1.0)


def test_quadratic_grid_is_uniform_in_sqrt_t(sde):
    t = grids.quadratic(sde, 6, 1e-3).sqrt()
    gaps = t[:-1] - t[1:]
    torch.testing.assert_close(gaps, gaps.mean().expand(6), rtol=1e-9, atol=0)


def test_logistic_grid_is_the_quantiles_of_its_density(sde):
    """lambda_i are equally spaced in the CDF floor lambda + width tanh((lambda - lambda_data) / width)."""
    t = grids.logistic(sde, 12, 1e-3, sigma_data=0.5, width=2.0, floor=0.1)
    assert t.dtype == torch.float64 and float(t[0]) == sde.T and float(t[-1]) == 1e-3 and bool((t[:-1] > t[1:]).all())
    lam = -sde.sigma(t).log()
    cdf = 0.1 * lam + 2.0 * torch.tanh((lam - math.log(2.0)) / 2.0)
    gaps = cdf[1:] - cdf[:-1]
    torch.testing.assert_close(gaps, gaps.mean().expand(12), rtol=1e-7, atol=0)
    with pytest.raises(ValueError, match="width must be a positive number"):
        grids.logistic(sde, 4, 1e-3, width=0)
