"""Per-sample Brownian paths (``sample(noise="brownian", seed=...)``) and the samplers that follow them; DDIM's
eta noise as the increment of the sample's path."""

import pytest
import torch
from solver_checks import fd_to, noise_floor

import scoresde
from scoresde.oracle import Gaussian, anisotropic_gaussian

DATA = Gaussian(torch.tensor([1.0, -0.5]), cov=torch.tensor([[0.3, 0.12], [0.12, 0.1]]))


def _x_T(sde, n, seed=0, data=DATA):
    return data.marginal(sde, sde.T).sample(n, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


def _run(sde, x_T, solver="ddim", *, seed=5, gen=0, data=DATA, **options):
    return scoresde.sample(sde, data.score_fn(sde), None, start=x_T, solver=solver, noise="brownian", seed=seed,
                           generator=torch.Generator().manual_seed(gen), denoise=False, **options)[0]  # fmt: skip


@pytest.mark.parametrize("eta", [0.5, 1.0])
def test_ddim_sample_keeps_its_path_when_its_batch_changes(sde, eta):
    """A sample's result depends on its seed and index only: not on the generator nor on the rest of the batch."""
    x_T = _x_T(sde, 8)
    ref = _run(sde, x_T, eta=eta, steps=12)
    other = x_T.clone()
    other[4:] = _x_T(sde, 4, seed=1)
    torch.testing.assert_close(_run(sde, other, eta=eta, steps=12, gen=1)[:4], ref[:4])
    torch.testing.assert_close(_run(sde, x_T[:4], eta=eta, steps=12, gen=2), ref[:4])
    assert (_run(sde, x_T, eta=eta, steps=12, seed=6)[:4] - ref[:4]).abs().min() > 1e-6


@pytest.mark.parametrize("eta", [0.5, 1.0])
def test_ddim_sample_keeps_its_path_when_the_step_count_changes(sde, eta):
    """Same path, 30 and 60 steps: the samples nearly agree (the solve converges along the path); another path
    lands as far away as an independent sample. A fresh draw per step (the old eta noise) would make both far."""
    x_T = _x_T(sde, 64)
    fine = _run(sde, x_T, eta=eta, steps=60)
    same = (_run(sde, x_T, eta=eta, steps=30) - fine).pow(2).mean().sqrt()
    other = (_run(sde, x_T, eta=eta, steps=30, seed=6) - fine).pow(2).mean().sqrt()
    assert same < 0.2 * other


def test_ddim_eta_one_is_ancestral_sampling_on_the_same_path(sde):
    """DDIM with eta = 1 is DDPM's posterior step (beta-tilde variance): on the same grid and path, the same sample."""
    x_T = _x_T(sde, 16)
    ddim = _run(sde, x_T, "ddim", eta=1.0, steps=10, grid="uniform")
    ancestral = _run(sde, x_T, "ancestral", variance="beta_tilde", steps=10, grid="uniform")
    torch.testing.assert_close(ddim, ancestral)


@pytest.mark.parametrize("eta", [0.5, 1.0])
def test_ddim_on_brownian_paths_has_the_exact_marginal(sde, eta):
    """2-D Gaussian, 100 steps: the moments of the samples are at the noise floor of exact samples."""
    x_T = _x_T(sde, 2000)
    target = DATA.marginal(sde, 1e-3)
    ratio = fd_to(_run(sde, x_T, eta=eta, steps=100), target) / noise_floor(target, 2000)
    assert ratio < 6.0  # see test_euler_maruyama.py: beyond the 99.9th percentile of FD / floor for exact samples


@pytest.mark.slow
def test_ddim_on_brownian_paths_reaches_the_floor_in_64d():
    """64-D anisotropic Gaussian under VP, eta = 1, 200 steps: FD to the exact p_eps within the sampling noise."""
    sde, data = scoresde.VPSDE(), anisotropic_gaussian(64)
    target = data.marginal(sde, 1e-3)
    x = _run(sde, _x_T(sde, 1000, data=data), data=data, eta=1.0, steps=200)
    assert fd_to(x, target) / noise_floor(target, 1000, reps=4) < 1.3  # exact samples: 99th percentile 1.11
