"""Samplers on a CUDA device (skipped without one): device placement, generators, agreement with the CPU."""

import pytest
import torch

import scoresde
from scoresde.oracle import Gaussian

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")

DATA = Gaussian(torch.tensor([1.0, -0.5]), std=torch.tensor([0.5, 0.3]))
CONFIGS = [
    {"solver": "euler_maruyama", "steps": 20},
    {"solver": "pc", "steps": 20, "corrector": "annealed_langevin"},
    {"solver": "ancestral", "steps": 20},
    {"solver": "ald", "steps": 4, "n_steps_each": 5},
    {"solver": "ode", "method": "dopri5"},
    {"solver": "ode", "method": "rk4", "steps": 10},
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: "-".join(str(v) for v in c.values()))
def test_runs_on_cuda_with_a_cuda_generator(sde, config):
    gen = torch.Generator(device="cuda").manual_seed(0)
    x, info = scoresde.sample(sde, DATA.score_fn(sde), (64, 2), generator=gen, trajectory=True, **config)
    assert x.device.type == "cuda" and info.trajectory.device.type == "cuda"
    assert bool(torch.isfinite(x).all()) and info.nfe > 0


@pytest.mark.parametrize("method", ["rk4", "dopri5"])
def test_ode_agrees_with_the_cpu(sde, method):
    x_T = DATA.marginal(sde, sde.T).sample(32, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    run = lambda x: scoresde.sample(sde, DATA.score_fn(sde), None, start=x, solver="ode", method=method, steps=10)[0]  # noqa: E731
    torch.testing.assert_close(run(x_T.cuda()).cpu(), run(x_T), rtol=1e-6, atol=1e-6)


def test_cpu_generator_with_cuda_device_is_refused():
    sde = scoresde.VPSDE()
    with pytest.raises(ValueError, match="generator is on cpu but the sample is on cuda"):
        scoresde.sample(sde, DATA.score_fn(sde), (4, 2), device="cuda", generator=torch.Generator())
