"""The step-count rules of the fast solvers' defaults (published settings, switching at the published 10 steps),
and what the defaults buy against the exact flow map."""

import pytest
import torch

import scoresde
from scoresde.oracle import GaussianMixture, anisotropic_gaussian, eight_gaussians
from scoresde.solvers import DPMSolver, UniPC, grids
from scoresde.solvers.dpm_solver import DPMSolver2, DPMSolver3
from scoresde.solvers.unipc import FEW_STEPS

EPS = 1e-3


def _rmse(x, exact):
    return float((x - exact).pow(2).mean().sqrt())


def test_the_rules_switch_at_the_published_threshold():
    """UniPC's "bh1 when steps < 10, bh2 otherwise" and DPM-Solver's ``lower_order_final and steps < 10``."""
    assert FEW_STEPS == 10
    assert [UniPC.resolved_variant(s) for s in (1, 9, 10, 50)] == ["bh1", "bh1", "bh2", "bh2"]  # variant="auto"
    few, many = UniPC().resolved(9), UniPC().resolved(10)
    assert (few.order, few.variant, few.prediction, few.lower_order_final) == (2, "bh2", "data", True)  # diffusers
    assert (many.order, many.variant, many.prediction, many.lower_order_final) == (3, "bh2", "data", True)
    few, many = DPMSolver().resolved(9), DPMSolver().resolved(10)
    assert (few.prediction, few.lower_order_final, few.order) == ("data", True, 2)  # DPM-Solver++(2M)
    assert (many.prediction, many.lower_order_final, many.order) == ("noise", False, 2)  # DPM-Solver-2M


@pytest.mark.parametrize(("steps", "order", "grid"), [(5, 2, "uniform"), (9, 2, "uniform"), (10, 3, "log_snr"),
                                                      (20, 3, "log_snr")])  # fmt: skip
def test_unipc_default_is_order_2_on_time_uniform_below_10_steps_else_order_3_on_log_snr(steps, order, grid):
    sde, data = scoresde.VPSDE(), eight_gaussians()
    x_T = torch.randn(16, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    run = lambda **o: scoresde.sample(sde, data.score_fn(sde), None, start=x_T, solver="unipc", steps=steps, **o)[0]  # noqa: E731
    default = run()
    assert torch.equal(default, run(order=order, variant="bh2", grid=grid))
    assert not torch.equal(default, run(order=5 - order, variant="bh2", grid=grid))
    assert not torch.equal(default, run(order=order, variant="bh1", grid=grid))
    assert not torch.equal(
        default, run(order=order, variant="bh2", grid={"uniform": "log_snr", "log_snr": "uniform"}[grid])
    )
    torch.testing.assert_close(UniPC().grid(sde, steps, EPS), grids.make(grid, sde, steps, EPS), rtol=0, atol=0)


def test_unipc_explicit_grid_and_variant_override_the_rule():
    sde = scoresde.VESDE()
    torch.testing.assert_close(UniPC(grid="karras").grid(sde, 20, EPS), grids.karras(sde, 20, EPS), rtol=0, atol=0)
    assert UniPC(variant="bh1").b_of_h(-0.5, 20) == -0.5
    assert UniPC().b_of_h(-0.5, 9) == UniPC().b_of_h(-0.5, 20) == pytest.approx(torch.tensor(-0.5).expm1().item())
    assert UniPC(variant="auto").b_of_h(-0.5, 9) == -0.5
    assert UniPC(order=3).resolved(5).order == 3 and UniPC(order=1).variants(5)[0].order == 1
    with pytest.raises(ValueError, match="variant must be one of"):
        UniPC(variant="bh3")
    with pytest.raises(ValueError, match="order must be 1, 2, 3 or 'auto'"):
        UniPC(order=4)


@pytest.mark.parametrize(("steps", "prediction", "final", "grid"), [(5, "data", True, "log_snr"),
                                                                    (9, "data", True, "log_snr"),
                                                                    (10, "noise", False, "quadratic"),
                                                                    (20, "noise", False, "quadratic")])  # fmt: skip
def test_dpm_solver_default_is_dpmpp_2m_on_log_snr_below_10_steps_else_dpm_solver_2m_on_quadratic(
    sde, steps, prediction, final, grid
):
    data = anisotropic_gaussian(3, seed=0)
    x_T = sde.prior_sampling((8, 3), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    run = lambda s: scoresde.sample(sde, data.score_fn(sde), None, start=x_T, solver=s, steps=steps, denoise=False)  # noqa: E731
    default = run(DPMSolver())[0]
    assert torch.equal(default, run(DPMSolver(2, prediction, lower_order_final=final, grid=grid))[0])
    flipped = {"data": "noise", "noise": "data"}[prediction]
    assert not torch.equal(default, run(DPMSolver(2, flipped, lower_order_final=final, grid=grid))[0])
    torch.testing.assert_close(DPMSolver().grid(sde, steps, EPS), grids.make(grid, sde, steps, EPS), rtol=0, atol=0)
    assert DPMSolver().describe()["grid"] == "log_snr below 10 steps, else quadratic"
    torch.testing.assert_close(DPMSolver(grid="karras").grid(sde, 20, EPS), grids.karras(sde, 20, EPS, rho=5.0))
    for fixed in (DPMSolver2(), DPMSolver3()):  # the paper's single-step solvers keep the log-SNR grid
        torch.testing.assert_close(fixed.grid(sde, 12, EPS), grids.uniform_log_snr(sde, 12, EPS), rtol=0, atol=0)
        assert fixed.prediction == "noise" and fixed.resolved(5).prediction == "noise"


def test_dpm_solver_rejects_bad_auto_options():
    with pytest.raises(ValueError, match="prediction must be one of"):
        DPMSolver(prediction="x0")
    with pytest.raises(TypeError, match="lower_order_final must be a bool or 'auto'"):
        DPMSolver(lower_order_final="sometimes")


@pytest.mark.parametrize(("sde", "tol"), [(scoresde.VESDE(0.01, 9.4), 1e-4), (scoresde.VPSDE(), 7e-4)])
def test_unipc_default_at_20_nfe_resolves_every_scale_of_the_64d_gaussian(sde, tol):
    """The log-SNR grid from 10 steps: 3e-5 (VE) and 3e-4 (VP); bh1 on the "logistic" grid gave 2e-3."""
    data = anisotropic_gaussian(64)
    x_T = data.marginal(sde, sde.T).sample(32, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    exact = data.flow(sde, x_T, sde.T, EPS)
    x, info = scoresde.sample(sde, data.score_fn(sde), None, start=x_T, solver="unipc", nfe=20, denoise=False)
    assert info.nfe == 20 and _rmse(x, exact) < tol


def test_dpm_solver_default_at_6_nfe_on_the_64d_ve_gaussian():
    """DPM-Solver++(2M) on the log-SNR grid: 0.0066 at 6 NFE under VE; UniPC's default there 0.11, DPM-Solver-2M
    (noise prediction) on the same grid 0.03."""
    sde, data = scoresde.VESDE(0.01, 9.4), anisotropic_gaussian(64)
    x_T = data.marginal(sde, sde.T).sample(32, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    exact = data.flow(sde, x_T, sde.T, EPS)
    x, info = scoresde.sample(sde, data.score_fn(sde), None, start=x_T, solver="dpm_solver", nfe=6, denoise=False)
    assert info.nfe == 6 and _rmse(x, exact) < 0.01


def test_dpm_solver_default_at_10_nfe_on_the_mixture():
    """DPM-Solver-2M on the time-quadratic grid: 0.0069 at 10 NFE under VP."""
    sde, data = scoresde.VPSDE(), eight_gaussians()
    p_T = GaussianMixture([c.marginal(sde, sde.T) for c in data.components], data.weights)
    x_T = p_T.sample(16, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    score = data.score_fn(sde)
    exact, _ = scoresde.sample(sde, score, None, start=x_T, solver="ode", rtol=1e-8, atol=1e-8, denoise=False)
    x, info = scoresde.sample(sde, score, None, start=x_T, solver="dpm_solver", nfe=10, denoise=False)
    assert info.nfe == 10 and _rmse(x, exact) < 0.01
