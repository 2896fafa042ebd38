"""benchmarks/per_sample_ode.py's torchode wiring, where torchode is installed (it is no dependency of scoresde).

torchode's per-sample Dormand-Prince with the library's error norm and the library's own per-sample solver must
reach the exact answer on the oracle Gaussian at a tight tolerance, for sampling and for the likelihood (the
augmented state flattened as torchode requires), and count the same rows as the benchmark reports.
"""

import sys
from pathlib import Path

import pytest
import torch

import scoresde
from scoresde.oracle import anisotropic_gaussian

pytest.importorskip("torchode")
sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import per_sample_ode  # noqa: E402

DATA = anisotropic_gaussian(4)


@pytest.mark.parametrize("solver", ["scoresde", "torchode", "torchdiffeq"])
def test_sampling_reaches_the_exact_flow_map(solver):
    sde = scoresde.VPSDE()
    x_T = DATA.marginal(sde, sde.T).sample(8, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x, cost = per_sample_ode.run_sampling(solver, sde, DATA, x_T, 1e-8)
    exact = DATA.flow(sde, x_T, sde.T, per_sample_ode.EPS_SAMPLE)
    assert (x - exact).abs().max() < 1e-5
    assert cost["rows"] == (cost["calls"] * 8 if solver != "scoresde" else cost["needed"])
    assert cost["needed"] <= cost["rows"]


@pytest.mark.parametrize("solver", ["scoresde", "torchode"])
def test_likelihood_reaches_the_exact_log_density(solver):
    sde = scoresde.VESDE(0.01, 5.0)
    x = DATA.sample(8, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    logp, _ = per_sample_ode.run_likelihood(solver, sde, DATA, x, 1e-8)
    exact = DATA.ode_log_prob(sde, x, eps=per_sample_ode.EPS_LIKELIHOOD)
    assert (logp - exact).abs().max() / DATA.dim < 1e-5
