"""The particle filter (method="smc"): weights, resampling, ESS reporting, and convergence to the exact posterior."""

import pytest
import torch
from conditioning_checks import SDES, fd_ratio, gaussian_problem

import scoresde
from scoresde.conditioning.smc import effective_sample_size, systematic_resample


@pytest.fixture(scope="module")
def problem():
    return gaussian_problem()


def test_effective_sample_size():
    logw = torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.0, -1e9, -1e9, -1e9], [5.0, 5.0, -1e9, -1e9]], dtype=torch.float64)
    torch.testing.assert_close(effective_sample_size(logw), torch.tensor([4.0, 1.0, 2.0], dtype=torch.float64))


def test_systematic_resampling_keeps_each_count_within_one_of_k_times_its_weight():
    gen = torch.Generator().manual_seed(0)
    w = torch.rand(50, 8, generator=gen, dtype=torch.float64)
    idx = systematic_resample(w.log(), gen)
    counts = torch.zeros_like(w).scatter_add_(1, idx, torch.ones_like(w))
    expected = 8 * w / w.sum(1, keepdim=True)
    assert bool(((counts - expected).abs() < 1).all())


def test_info_reports_ess_and_evaluations_per_sample(problem):
    g, y0, mask, _ = problem
    sde = scoresde.VPSDE()
    y = y0.expand(4, 12).clone()
    x, info = scoresde.inpaint(sde, g.score_fn(sde), y, mask, method="smc", particles=5, steps=20, ensemble=False)
    assert info.nfe == 5 * 21 and info.extras["score_calls"] == 21 and info.extras["particles"] == 5
    ess = info.extras["ess"]
    assert ess.shape == (20,) and bool(((ess > 0) & (ess <= 1 + 1e-9)).all())
    assert 0 < info.extras["final_ess"] <= 1 + 1e-9


def test_grid_and_options_are_checked():
    from scoresde.conditioning.smc import GRIDS, ParticleFilter

    assert ParticleFilter().grid_name == "logistic" and ParticleFilter().final_weight
    for name in GRIDS:
        times = ParticleFilter(grid=name).grid(scoresde.VPSDE(), 10, 1e-3)
        assert times.shape == (11,) and bool((times.diff() < 0).all())
    with pytest.raises(ValueError, match="grid"):
        ParticleFilter(grid="geometric")


@pytest.mark.parametrize(
    "sde_name", ["vp", pytest.param("subvp", marks=pytest.mark.slow), pytest.param("ve", marks=pytest.mark.slow)]
)
def test_smc_beats_replacement_and_its_error_falls_with_budget(sde_name, problem):
    """Fast version of benchmarks/inpainting_accuracy.py: 500 samples, exact score, FD / noise floor (default grid and
    final weight). Measured (VP / sub-VP / VE): nfe 40 (K=2) 16.6 / 35.5 / 30.3; nfe 1000 (K=10) 1.0 / 1.9 / 2.2."""
    g, y0, mask, post = problem
    sde = SDES[sde_name]()
    y = y0.expand(500, 12).clone()

    def ratio(nfe, **options):
        x, info = scoresde.inpaint(sde, g.score_fn(sde), y, mask, nfe=nfe, generator=torch.Generator().manual_seed(0),
                                   **options)  # fmt: skip
        assert info.nfe <= nfe
        return fd_ratio(post, x)

    small, large = ratio(40, method="smc", particles=2), ratio(1000, method="smc", particles=10)
    replacement = ratio(1000, method="replacement")
    print(f"{sde_name}: smc nfe 40 {small:.1f}, smc nfe 1000 {large:.1f}, replacement nfe 1000 {replacement:.1f}")
    assert large < small / 2
    assert large < replacement / 10
    assert large < 3.0


def test_default_filter_takes_its_particles_from_the_budget(problem):
    """particles=None: K = round(0.95 sqrt(nfe)) with the ensemble correction; 1000 evaluations buy K = 30, 26 steps."""
    g, y0, mask, _ = problem
    sde = scoresde.VPSDE()
    y = y0.expand(2, 12).clone()
    x, info = scoresde.inpaint(sde, g.score_fn(sde), y, mask, method="smc", nfe=1000)
    assert info.extras["particles"] == 30 and info.extras["ensemble"] and info.steps == 26 and info.nfe == 992
    assert info.extras["score_calls"] == 27 + 7 * 26  # 26 steps and the denoising on the particles, 7 probes a step
    _, small = scoresde.inpaint(sde, g.score_fn(sde), y, mask, method="smc", nfe=100)
    assert small.extras["particles"] == 10 and small.nfe <= 100
    _, fixed = scoresde.inpaint(sde, g.score_fn(sde), y, mask, method="smc", nfe=1000, particles=12)
    assert fixed.extras["particles"] == 12 and fixed.nfe <= 1000
    _, unbudgeted = scoresde.inpaint(sde, g.score_fn(sde), y, mask, method="smc")
    assert unbudgeted.extras["particles"] == 30 and unbudgeted.steps == 26
    _, plain = scoresde.inpaint(sde, g.score_fn(sde), y, mask, method="smc", kernel="euler_maruyama", steps=5)
    assert not plain.extras["ensemble"]  # the correction is defined for the ancestral kernel only
