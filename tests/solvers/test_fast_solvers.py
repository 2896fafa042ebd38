"""EDM's Heun sampler and DPM-Solver-2/3 against the oracle's exact flow map."""

import pytest
import torch
from solver_checks import marginal_mixture

import scoresde
from scoresde.oracle import Gaussian, eight_gaussians
from scoresde.solvers import DPMSolver2, DPMSolver3, EDMHeun

DATA = Gaussian(torch.tensor([1.0, -0.5]), cov=torch.tensor([[0.3, 0.12], [0.12, 0.1]]))
SOLVERS = {"edm_heun": (EDMHeun, 2), "dpm_solver2": (DPMSolver2, 2), "dpm_solver3": (DPMSolver3, 3)}


def _run(sde, solver, steps, x_T, data=DATA):
    return scoresde.sample(sde, data.score_fn(sde), None, start=x_T, solver=solver, steps=steps, denoise=False)


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_converges_to_the_exact_flow_map_at_its_order(sde, name):
    cls, order = SOLVERS[name]
    x_T = DATA.marginal(sde, sde.T).sample(64, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    exact = DATA.flow(sde, x_T, sde.T, 1e-3)
    steps, errors = [10, 20, 40], []
    for n in steps:
        x, info = _run(sde, name, n, x_T)
        assert info.nfe == order * n  # EDM: 2 NFE per Heun step; DPM-Solver-k: k
        errors.append(float((x - exact).pow(2).mean().sqrt()))
    log_n, log_e = torch.tensor(steps).double().log(), torch.tensor(errors).double().log()
    slope = float(((log_n - log_n.mean()) * (log_e - log_e.mean())).sum() / (log_n - log_n.mean()).pow(2).sum())
    assert abs(-slope - cls.order) < 0.45, f"fitted order {-slope:.2f}, errors {errors}"
    assert errors[-1] < 2e-2 * float(DATA.eigvals.mean().sqrt())


@pytest.mark.parametrize("name", sorted(SOLVERS))
def test_image_shapes_and_registry(sde, name):
    data = Gaussian(torch.zeros(3, 4, 4), std=0.5)
    x, info = scoresde.sample(sde, data.score_fn(sde), (4, 3, 4, 4), solver=name, steps=5)
    assert x.shape == (4, 3, 4, 4) and bool(torch.isfinite(x).all())
    assert info.nfe == SOLVERS[name][1] * 5 + 1


def test_edm_final_denoise_is_the_euler_step_to_sigma_zero(sde):
    """EDM's last step (Euler from sigma_N to 0) equals sample()'s Tweedie denoising."""
    x_T = DATA.marginal(sde, sde.T).sample(8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x_eps, _ = _run(sde, "edm_heun", 6, x_T)
    x_den, _ = scoresde.sample(sde, DATA.score_fn(sde), None, start=x_T, solver="edm_heun", steps=6)
    m, sigma = float(sde.mean_scale(1e-3)), float(sde.sigma(1e-3))
    x_tilde = x_eps / m
    d = -sigma * m * DATA.score(sde, x_eps, 1e-3)
    torch.testing.assert_close(x_den, x_tilde + (0 - sigma) * d)


def test_dpm_solver3_recovers_mixture_weights():
    sde = scoresde.VPSDE()
    mix = eight_gaussians(weights=[1, 2, 3, 4, 1, 2, 3, 4])
    n = 4000
    x_T = marginal_mixture(mix, sde, sde.T).sample(n, generator=torch.Generator().manual_seed(0))
    x, _ = scoresde.sample(sde, mix.score_fn(sde), None, start=x_T, solver="dpm_solver3", steps=20)
    counts = torch.bincount(mix.responsibilities(None, x.double()).argmax(1), minlength=8).double() / n
    w = mix.weights
    assert bool(((counts - w).abs() < 4 * (w * (1 - w) / n).sqrt()).all()), (counts, w)


def test_bad_rho():
    with pytest.raises(ValueError, match="rho must be a positive finite number"):
        EDMHeun(rho=0)
