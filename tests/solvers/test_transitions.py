"""Solvers' Gaussian transitions: the step is its transition plus noise, the particle filter reuses them, and the
loop walks increasing grids and augmented states (the likelihood's)."""

import math

import pytest
import torch

from scoresde.conditioning.smc import KERNELS
from scoresde.oracle import Gaussian
from scoresde.solvers import Ancestral, CountingScore, EulerMaruyama, GridCoefficients, ReverseDiffusion, grids
from scoresde.solvers.base import GaussianTransition, StepContext, integrate

DATA = Gaussian(torch.tensor([1.0, -0.5]), std=torch.tensor([0.5, 0.3]))


def _ctx(sde, times, seed):
    score = CountingScore(DATA.score_fn(sde))
    coeffs = GridCoefficients.from_grid(sde, times)
    gen = torch.Generator().manual_seed(seed)
    return StepContext(sde, score, coeffs, times.to(torch.float32), 6, gen)


@pytest.mark.parametrize("solver", [ReverseDiffusion(), EulerMaruyama(), Ancestral("beta_tilde"), Ancestral("beta")])
def test_a_step_is_its_transition_plus_noise(sde, solver):
    times = grids.uniform(sde, 4, 1e-3)
    x = torch.randn(6, 2, generator=torch.Generator().manual_seed(0))
    for i in range(4):
        stepped = solver.step(x, i, _ctx(sde, times, seed=i))
        ctx = _ctx(sde, times, seed=i)
        mean, var = solver.transition(x, ctx.score(x, ctx.t(i)), i, ctx)
        torch.testing.assert_close(stepped, mean + math.sqrt(var) * ctx.increment(x, i), rtol=0, atol=0)


def test_the_particle_filter_steps_with_the_solvers_transitions(sde):
    times = grids.uniform(sde, 3, 1e-3)
    ctx = _ctx(sde, times, seed=0)
    x = torch.randn(6, 2, generator=torch.Generator().manual_seed(1))
    score = ctx.score(x, ctx.t(1))
    for kernel, solver in (("ancestral", Ancestral("beta_tilde")), ("reverse_diffusion", ReverseDiffusion()),
                           ("euler_maruyama", EulerMaruyama())):  # fmt: skip
        got, want = KERNELS[kernel](x, score, 1, ctx), solver.transition(x, score, 1, ctx)
        assert isinstance(got, GaussianTransition)
        torch.testing.assert_close(got.mean, want.mean, rtol=0, atol=0)
        assert got.var == want.var


def test_the_loop_walks_an_increasing_grid_with_an_augmented_state(sde):
    """An increasing grid's kernel is the forward one of each interval; a tuple state is carried whole."""
    up = grids.uniform(sde, 5, 1e-3).flip(0)
    down = GridCoefficients.from_grid(sde, up.flip(0))
    c = GridCoefficients.from_grid(sde, up)
    assert c.r == pytest.approx(down.r[::-1]) and c.v == pytest.approx(down.v[::-1])
    assert c.dt == pytest.approx([-d for d in down.dt[::-1]])

    class Shift:
        def step(self, y, i, ctx):
            return y[0] + 1, y[1] + ctx.coeffs.dt[i]

    state = (torch.zeros(3, 2), torch.zeros(3))
    (x, total), traj = integrate(Shift(), sde, CountingScore(DATA.score_fn(sde)), state, up)
    assert traj is None and bool((x == 5).all())
    torch.testing.assert_close(total, torch.full((3,), float(up[0] - up[-1])))
    with pytest.raises(ValueError, match="trajectory"):
        integrate(Shift(), sde, CountingScore(DATA.score_fn(sde)), state, up, trajectory=True)
