"""The per-sample adaptive reverse-SDE solver: exact marginals, batch independence, budgets, NFE reports."""

import warnings

import pytest
import torch
from solver_checks import fd_to, noise_floor

import scoresde
from scoresde.oracle import Gaussian
from scoresde.solvers import AdaptiveSDE
from scoresde.solvers.adaptive_sde import ForcedStepWarning

DATA = Gaussian(torch.tensor([1.0, -0.5]), cov=torch.tensor([[0.3, 0.12], [0.12, 0.1]]))
K_2D = 6.0  # see test_euler_maruyama.py


def _run(sde, x_T, gen_seed=0, **options):
    gen = torch.Generator().manual_seed(gen_seed)
    return scoresde.sample(sde, DATA.score_fn(sde), None, start=x_T, solver="adaptive_sde", generator=gen,
                           denoise=False, **options)  # fmt: skip


@pytest.mark.slow
def test_samples_match_the_exact_marginal_in_every_sde(sde):
    _check_marginal(sde, 2000)


def test_samples_match_the_exact_marginal_with_fewer_evaluations_than_em():
    _check_marginal(scoresde.VPSDE(), 500)


def _check_marginal(sde, n):
    x_T = DATA.marginal(sde, sde.T).sample(n, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x, info = _run(sde, x_T)
    target = DATA.marginal(sde, 1e-3)
    assert fd_to(x, target) < K_2D * noise_floor(target, n)
    extras = info.extras
    assert len(extras["nfe_per_sample"]) == n and extras["sample_evaluations"] == sum(extras["nfe_per_sample"])
    assert extras["nfe_max"] == info.nfe  # the score calls: one per attempt of the slowest sample, twice
    assert extras["nfe_mean"] < 1000 / 3


@pytest.mark.parametrize("retry", [pytest.param("bridge", marks=pytest.mark.slow), "redraw"])
def test_a_sample_does_not_depend_on_its_batch(sde, retry):
    """Replacing the rest of the batch (and its size) leaves a sample's result unchanged: own time, step, noise.
    (A diagonal Gaussian: its score is elementwise, so bitwise the same in any batch; a matmul's round-off may
    depend on the batch size, and the step-size control would amplify it.)"""
    data = Gaussian(torch.tensor([1.0, -0.5]), std=torch.tensor([0.5, 0.3]))
    gen = torch.Generator().manual_seed(2)
    x_T = data.marginal(sde, sde.T).sample(2, generator=gen, dtype=torch.float64)
    other = 30.0 * torch.randn(3, 2, generator=gen, dtype=torch.float64)  # far out: very different step sizes
    run = lambda x: scoresde.sample(sde, data.score_fn(sde), None, start=x, solver="adaptive_sde", retry=retry,  # noqa: E731
                                    eps_rel=0.1, generator=torch.Generator().manual_seed(0), denoise=False)  # fmt: skip
    alone, info_alone = run(x_T)
    mixed, info_mixed = run(torch.cat([x_T, other]))
    torch.testing.assert_close(alone, mixed[:2], rtol=1e-12, atol=1e-12)
    assert info_alone.extras["nfe_per_sample"] == info_mixed.extras["nfe_per_sample"][:2]
    assert info_mixed.nfe >= info_alone.nfe  # the hard samples may cost calls, never the easy samples' steps


def test_a_sample_does_not_depend_on_its_batch_with_the_bridge():
    test_a_sample_does_not_depend_on_its_batch(scoresde.VPSDE(), "bridge")


def test_the_run_noise_source_is_the_path():
    """With sample(noise="brownian", seed=...) the solver walks that path: the seed, not the generator, sets it."""
    sde = scoresde.VPSDE()
    x_T = torch.randn(3, 2, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    a, _ = _run(sde, x_T, gen_seed=0, eps_rel=0.3, noise="brownian", seed=5)
    b, _ = _run(sde, x_T, gen_seed=1, eps_rel=0.3, noise="brownian", seed=5)
    c, _ = _run(sde, x_T, gen_seed=1, eps_rel=0.3, noise="brownian", seed=6)
    torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert not torch.allclose(a, c)


@pytest.mark.slow
def test_redrawn_noise_after_rejections_is_biased_and_the_bridge_is_not():
    """The paper's fresh draw after a rejection selects small increments: the mean of the samples moves by several
    standard errors; retrying on the sample's own Brownian path (the default) keeps it (VP, 2-D Gaussian)."""
    sde, n = scoresde.VPSDE(), 2000
    x_T = DATA.marginal(sde, sde.T).sample(n, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    se = float(DATA.eigvals.max().sqrt()) / n**0.5
    target = DATA.marginal(sde, 1e-3).mean
    bridge = (_run(sde, x_T)[0].mean(0) - target).abs().max() / se
    redraw = (_run(sde, x_T, retry="redraw")[0].mean(0) - target).abs().max() / se
    assert bridge < 3 < redraw


@pytest.mark.parametrize("nfe", [2, 3, 10, 41])
def test_budget_is_never_exceeded_and_every_sample_reaches_eps(nfe):
    sde = scoresde.VESDE(sigma_min=0.01, sigma_max=5.0)
    x_T = DATA.marginal(sde, sde.T).sample(50, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    with pytest.warns(ForcedStepWarning, match=f"ran out of its nfe={nfe} budget"):
        x, info = _run(sde, x_T, nfe=nfe, eps_rel=0.001)  # a tolerance far too tight for the budget
    assert info.nfe <= nfe and max(info.extras["nfe_per_sample"]) <= nfe
    assert info.extras["forced_by_budget"] > 0 and bool(torch.isfinite(x).all())
    jump_max = info.extras["forced_jump_max"]
    assert 0 < info.extras["forced_jump_mean"] <= jump_max * (1 + 1e-12) and jump_max <= sde.T - 1e-3 + 1e-12
    assert info.extras["forced_from_sigma_max"] <= float(sde.sigma(sde.T)) * (1 + 1e-9)


def test_a_budget_it_meets_neither_warns_nor_reports_a_jump():
    sde = scoresde.VESDE(sigma_min=0.01, sigma_max=5.0)
    x_T = DATA.marginal(sde, sde.T).sample(20, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ForcedStepWarning)
        _, info = _run(sde, x_T, nfe=4000)
    assert info.extras["forced_by_budget"] == 0 and "forced_jump_max" not in info.extras


def test_a_forced_step_from_T_jumps_the_whole_interval():
    sde = scoresde.VESDE(sigma_min=0.01, sigma_max=5.0)
    x_T = DATA.marginal(sde, sde.T).sample(10, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    with pytest.warns(ForcedStepWarning):
        _, info = _run(sde, x_T, nfe=2)  # one attempt only: forced from T straight to eps
    assert info.extras["forced_jump_max"] == pytest.approx(sde.T - 1e-3)
    assert info.extras["forced_from_sigma_max"] == pytest.approx(float(sde.sigma(sde.T)))


def test_bad_options():
    with pytest.raises(ValueError, match="eps_rel must be a number in"):
        AdaptiveSDE(eps_rel=0.0)
    with pytest.raises(ValueError, match="safety must be a number in"):
        AdaptiveSDE(safety=1.5)
    with pytest.raises(ValueError, match="nfe=1 is below the minimum of 2"):
        scoresde.sample(scoresde.VPSDE(), DATA.score_fn(scoresde.VPSDE()), (2, 2), solver="adaptive_sde", nfe=1)
