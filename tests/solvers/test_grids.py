"""Time grids."""

import pytest
import torch

from scoresde.solvers import grids


def test_uniform(sde):
    t = grids.uniform(sde, 4, 0.2)
    torch.testing.assert_close(t, torch.tensor([1.0, 0.8, 0.6, 0.4, 0.2], dtype=torch.float64))


@pytest.mark.parametrize("grid", [grids.geometric_sigma, grids.karras, grids.uniform_log_snr])
def test_sigma_grids_span_t_to_eps_and_decrease(sde, grid):
    t = grid(sde, 9, 1e-3)
    assert t.shape == (10,) and t.dtype == torch.float64
    assert float(t[0]) == sde.T and float(t[-1]) == 1e-3
    assert bool((t[:-1] > t[1:]).all())


def test_geometric_is_uniform_in_log_sigma(sde):
    log_sigma = sde.sigma(grids.geometric_sigma(sde, 8, 1e-3)).log()
    gaps = log_sigma[:-1] - log_sigma[1:]
    torch.testing.assert_close(gaps, gaps.mean().expand(8), rtol=1e-6, atol=0)


def test_karras_is_uniform_in_sigma_to_the_one_over_rho(sde):
    s = sde.sigma(grids.karras(sde, 8, 1e-3, rho=7.0)) ** (1 / 7)
    gaps = s[:-1] - s[1:]
    torch.testing.assert_close(gaps, gaps.mean().expand(8), rtol=1e-6, atol=0)


@pytest.mark.parametrize("steps", [0, -3, 2.5, True, "10"])
def test_bad_steps(sde, steps):
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        grids.uniform(sde, steps, 1e-3)


@pytest.mark.parametrize("eps", [0.0, -1e-3, 1.0, 2.0, float("nan")])
def test_bad_eps(sde, eps):
    with pytest.raises(ValueError, match=r"eps must lie in \(0, T\)"):
        grids.uniform(sde, 10, eps)
