"""The step-count rules of the fast solvers' defaults, and what the defaults buy against the exact flow map."""

import pytest
import torch

import scoresde
from scoresde.oracle import GaussianMixture, anisotropic_gaussian, eight_gaussians
from scoresde.solvers import DPMSolver, UniPC, grids
from scoresde.solvers.dpm_solver import DPMSolver2, DPMSolver3

EPS = 1e-3


def _rmse(x, exact):
    return float((x - exact).pow(2).mean().sqrt())


@pytest.mark.parametrize(("steps", "variant", "grid"), [(5, "bh1", "logistic"), (14, "bh1", "logistic"),
                                                         (15, "bh2", "log_snr"), (20, "bh2", "log_snr")])  # fmt: skip
def test_unipc_default_is_bh1_on_logistic_below_15_steps_else_bh2_on_log_snr(steps, variant, grid):
    sde, data = scoresde.VPSDE(), eight_gaussians()
    x_T = torch.randn(16, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    run = lambda **o: scoresde.sample(sde, data.score_fn(sde), None, start=x_T, solver="unipc", steps=steps, **o)[0]  # noqa: E731
    default = run()
    assert torch.equal(default, run(variant=variant, grid=grid))
    other = {"bh1": "bh2", "bh2": "bh1"}[variant]
    assert not torch.equal(default, run(variant=other, grid=grid))
    torch.testing.assert_close(UniPC().grid(sde, steps, EPS), grids.make(grid, sde, steps, EPS), rtol=0, atol=0)


def test_unipc_explicit_grid_and_variant_override_the_rule():
    sde = scoresde.VESDE()
    torch.testing.assert_close(UniPC(grid="karras").grid(sde, 20, EPS), grids.karras(sde, 20, EPS), rtol=0, atol=0)
    assert UniPC(variant="bh1").b_of_h(-0.5, 20) == -0.5
    assert UniPC().b_of_h(-0.5, 20) == pytest.approx(torch.tensor(-0.5).expm1().item())
    assert UniPC().b_of_h(-0.5, 14) == -0.5
    with pytest.raises(ValueError, match="variant must be one of"):
        UniPC(variant="bh3")


@pytest.mark.parametrize(("steps", "grid"), [(5, grids.logistic_mixed), (14, grids.logistic_mixed),
                                           (15, grids.logistic_narrow), (20, grids.logistic_narrow)])  # fmt: skip
def test_dpm_solver_default_grid_is_logistic_mixed_below_15_steps_else_logistic_narrow(sde, steps, grid):
    torch.testing.assert_close(DPMSolver().grid(sde, steps, EPS), grid(sde, steps, EPS), rtol=0, atol=0)
    assert DPMSolver().describe()["grid"] == "logistic_mixed below 15 steps, else logistic_narrow"
    assert DPMSolver().order == 2
    torch.testing.assert_close(DPMSolver(grid="log_snr").grid(sde, 20, EPS), grids.uniform_log_snr(sde, 20, EPS))
    for fixed in (DPMSolver2(), DPMSolver3()):  # the paper's single-step solvers keep the log-SNR grid
        torch.testing.assert_close(fixed.grid(sde, 12, EPS), grids.uniform_log_snr(sde, 12, EPS), rtol=0, atol=0)
        torch.testing.assert_close(fixed.grid(sde, 20, EPS), grids.uniform_log_snr(sde, 20, EPS), rtol=0, atol=0)


def test_logistic_mixed_and_narrow_are_logistic_grids_between_log_snr_and_the_default_bump(sde):
    mixed, narrow = grids.logistic_mixed(sde, 16, EPS), grids.logistic_narrow(sde, 16, EPS)
    torch.testing.assert_close(mixed, grids.logistic(sde, 16, EPS, width=1.625, floor=0.425), rtol=0, atol=0)
    for steps, width, floor in ((7, 1.75, 0.35), (8, 1.625, 0.425)):  # few steps: the lower floor, wider bump
        expected = grids.logistic(sde, steps, EPS, width=width, floor=floor)
        torch.testing.assert_close(grids.logistic_mixed(sde, steps, EPS), expected, rtol=0, atol=0)
    torch.testing.assert_close(narrow, grids.logistic(sde, 16, EPS, width=1.5, floor=0.2), rtol=0, atol=0)
    for t in (mixed, narrow):
        assert float(t[0]) == sde.T and float(t[-1]) == EPS and bool((t[1:] < t[:-1]).all())
    # the higher the floor, the closer to log-SNR: the largest log-SNR step shrinks from "logistic" to narrow to mixed
    widest = lambda t: float((-sde.sigma(t).log()).diff().max())  # noqa: E731
    assert widest(mixed) < widest(narrow) < widest(grids.logistic(sde, 16, EPS))


@pytest.mark.parametrize(("sde", "tol"), [(scoresde.VESDE(0.01, 9.4), 1e-4), (scoresde.VPSDE(), 7e-4)])
def test_unipc_default_at_20_nfe_resolves_every_scale_of_the_64d_gaussian(sde, tol):
    """The log-SNR grid from 15 steps: 3e-5 (VE) and 3e-4 (VP); the previous default (bh1, "logistic") 2e-3."""
    data = anisotropic_gaussian(64)
    x_T = data.marginal(sde, sde.T).sample(32, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    exact = data.flow(sde, x_T, sde.T, EPS)
    x, info = scoresde.sample(sde, data.score_fn(sde), None, start=x_T, solver="unipc", nfe=20, denoise=False)
    assert info.nfe == 20 and _rmse(x, exact) < tol


def test_dpm_solver_default_at_6_nfe_on_the_mixture():
    """DPM-Solver-2M on "logistic_mixed": 0.023 at 6 NFE under VP; the previous default (3M, Karras rho=5) 0.30."""
    sde, data = scoresde.VPSDE(), eight_gaussians()
    p_T = GaussianMixture([c.marginal(sde, sde.T) for c in data.components], data.weights)
    x_T = p_T.sample(16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    score = data.score_fn(sde)
    exact, _ = scoresde.sample(sde, score, None, start=x_T, solver="ode", rtol=1e-8, atol=1e-8, denoise=False)
    x, info = scoresde.sample(sde, score, None, start=x_T, solver="dpm_solver", nfe=6, denoise=False)
    assert info.nfe == 6 and _rmse(x, exact) < 0.06


def test_dpm_solver_default_at_20_nfe_on_the_ve_mixture():
    """From 15 steps the narrow bump: 0.0027 at 20 NFE under VE; before (floor 0.35, width 1.75) 0.0039."""
    sde, data = scoresde.VESDE(0.01, 5.0), eight_gaussians()
    p_T = GaussianMixture([c.marginal(sde, sde.T) for c in data.components], data.weights)
    x_T = p_T.sample(32, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    score = data.score_fn(sde)
    exact, _ = scoresde.sample(sde, score, None, start=x_T, solver="ode", rtol=1e-8, atol=1e-8, denoise=False)
    x, info = scoresde.sample(sde, score, None, start=x_T, solver="dpm_solver", nfe=20, denoise=False)
    assert info.nfe == 20 and _rmse(x, exact) < 0.0033
