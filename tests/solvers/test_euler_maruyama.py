"""Euler-Maruyama on the reverse SDE against exact marginals."""

import pytest
import torch
from solver_checks import fd_to, noise_floor

import scoresde
from scoresde.oracle import Gaussian

DATA = Gaussian(torch.tensor([1.0, -0.5]), cov=torch.tensor([[0.3, 0.12], [0.12, 0.1]]))
# The 99.9th percentile of FD / mean FD for exact 2-D samples is about 5 (measured over 400 draws), so 6 x the
# noise floor fails only for a real bias.
K_2D = 6.0


def test_samples_match_the_exact_marginal(sde):
    """1000 steps (the paper's count) from exact x_T: moments of the samples match p_eps within the noise floor."""
    n, eps = 4000, 1e-3
    gen = torch.Generator().manual_seed(0)
    x_T = DATA.marginal(sde, sde.T).sample(n, generator=gen)
    x, info = scoresde.sample(
        sde, DATA.score_fn(sde), None, start=x_T, solver="euler_maruyama", generator=gen, denoise=False
    )
    target = DATA.marginal(sde, eps)
    assert fd_to(x, target) < K_2D * noise_floor(target, n)
    assert info.nfe == 1000 and info.steps == 1000


def test_steps_on_the_grid_it_walks():
    """The reference stepped with dt = 1/N on a grid spaced (T - eps)/(N - 1). Here the score is called at the
    grid times, and stopping at a large eps = 0.5 still gives the exact marginal there (a wrong dt would not)."""
    sde = scoresde.VESDE(sigma_min=0.01, sigma_max=5.0)
    seen = []

    def score(x, t):
        seen.append(float(t[0]))
        return DATA.score(sde, x, t)

    n, eps, steps = 4000, 0.5, 200
    gen = torch.Generator().manual_seed(1)
    x_T = DATA.marginal(sde, sde.T).sample(n, generator=gen)
    x, info = scoresde.sample(sde, score, None, start=x_T, solver="euler_maruyama", steps=steps, eps=eps,
                              generator=gen, denoise=False)  # fmt: skip
    torch.testing.assert_close(
        torch.tensor(seen, dtype=torch.float64), torch.linspace(1.0, eps, steps + 1)[:-1].double()
    )
    target = DATA.marginal(sde, eps)
    assert fd_to(x, target) < K_2D * noise_floor(target, n)


@pytest.mark.slow
def test_samples_match_the_exact_marginal_in_64d(sde):
    data = scoresde.oracle.anisotropic_gaussian(64)
    n = 2000
    gen = torch.Generator().manual_seed(0)
    x_T = data.marginal(sde, sde.T).sample(n, generator=gen)
    x, _ = scoresde.sample(
        sde, data.score_fn(sde), None, start=x_T, solver="euler_maruyama", generator=gen, denoise=False
    )
    target = data.marginal(sde, 1e-3)
    # in 64-D the FD of exact samples concentrates: its 99th percentile is 1.11 x its mean (measured)
    assert fd_to(x, target) < 1.3 * noise_floor(target, n, reps=4)
