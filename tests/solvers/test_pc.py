"""Predictor-corrector sampling: every predictor/corrector pair against exact marginals, and the reference's defects."""

import math

import pytest
import torch
from solver_checks import fd_to, noise_floor

import scoresde
from scoresde.oracle import Gaussian, anisotropic_gaussian
from scoresde.solvers import PredictorCorrector
from scoresde.solvers.base import CountingScore, GridCoefficients, StepContext
from scoresde.solvers.pc import Langevin

DATA = Gaussian(torch.tensor([1.0, -0.5]), cov=torch.tensor([[0.3, 0.12], [0.12, 0.1]]))
K_2D = 6.0  # see test_euler_maruyama.py: 6 x the 2-D noise floor is beyond the 99.9th percentile of exact samples
K_64D = 1.5  # in 64-D the exact-sample FD concentrates (99th percentile 1.11 x mean)
PREDICTORS = ["euler_maruyama", "reverse_diffusion", "ancestral"]


def _fd_ratio(data, sde, n, seed=0, **options):
    gen = torch.Generator().manual_seed(seed)
    x_T = data.marginal(sde, sde.T).sample(n, generator=gen)
    x, info = scoresde.sample(
        sde, data.score_fn(sde), None, start=x_T, solver="pc", generator=gen, denoise=False, **options
    )
    target = data.marginal(sde, 1e-3)
    return fd_to(x, target) / noise_floor(target, n, reps=4 if data.dim > 2 else 8), info


@pytest.mark.parametrize(
    "sde_name, predictor, corrector",
    [
        ("ve", "reverse_diffusion", "annealed_langevin"),
        ("vp", "ancestral", "none"),
        ("subvp", "ancestral", "none"),
        ("subvp", "euler_maruyama", "annealed_langevin"),
        ("ve", "ancestral", "annealed_langevin"),
    ],  # fmt: skip
)
def test_pairs_match_the_exact_marginal(sde_name, predictor, corrector):
    """A fast selection of pairs (sub-VP with a Langevin corrector and an ancestral rule included)."""
    from conftest import SDE_FACTORIES

    ratio, info = _fd_ratio(DATA, SDE_FACTORIES[sde_name](), 4000, predictor=predictor, corrector=corrector)
    assert ratio < K_2D
    assert info.nfe == 1000 * (1 + (corrector != "none"))


@pytest.mark.slow
@pytest.mark.parametrize("corrector", ["none", "annealed_langevin"])
@pytest.mark.parametrize("predictor", PREDICTORS)
def test_every_pair_matches_the_exact_marginal(sde, predictor, corrector):
    ratio, _ = _fd_ratio(DATA, sde, 4000, predictor=predictor, corrector=corrector)
    assert ratio < K_2D


def test_snr_langevin_matches_in_high_dimension():
    """The paper's VE sampler (reverse diffusion + per-sample SNR Langevin, snr 0.16) on the 64-D Gaussian."""
    sde = scoresde.VESDE(sigma_min=0.01, sigma_max=20.0)
    ratio, info = _fd_ratio(anisotropic_gaussian(64), sde, 1000)
    assert ratio < K_64D
    assert info.nfe == 2000


@pytest.mark.slow
@pytest.mark.parametrize("predictor", [*PREDICTORS, "none"])
def test_snr_langevin_pairs_in_high_dimension(sde, predictor):
    sde = scoresde.VESDE(sigma_min=0.01, sigma_max=20.0) if isinstance(sde, scoresde.VESDE) else sde
    steps = 2000 if predictor == "none" else 1000  # corrector-only: the paper's C2000
    ratio, _ = _fd_ratio(anisotropic_gaussian(64), sde, 2000, predictor=predictor, corrector="langevin", steps=steps)
    assert ratio < (2.5 if predictor == "none" else K_64D)


def test_langevin_step_is_per_sample():
    """With snr_rule="sample" a sample's corrector update does not depend on the rest of its batch; with the
    reference's "batch" rule (the default) it does."""
    sde = scoresde.VPSDE()
    times = torch.linspace(1.0, 1e-3, 11, dtype=torch.float64)
    score = CountingScore(DATA.score_fn(sde))

    def correct(x, rule="sample"):
        gen = torch.Generator().manual_seed(7)
        ctx = StepContext(sde, score, GridCoefficients.from_grid(sde, times), times.float(), x.shape[0], gen)
        return Langevin(snr=0.16, n_steps=3, snr_rule=rule).correct(x, 5, ctx)

    x = torch.tensor([[0.3, -0.2], [1.0, 1.0]])
    far = torch.tensor([[0.3, -0.2], [40.0, -70.0]])  # same first sample, a wildly different second one
    torch.testing.assert_close(correct(x)[0], correct(far)[0], rtol=0, atol=0)
    assert not torch.equal(correct(x)[1], correct(far)[1])
    assert not torch.equal(correct(x, "batch")[0], correct(far, "batch")[0])


@pytest.mark.parametrize(
    "predictor, corrector, n_corr, per_step",
    [
        ("reverse_diffusion", "none", None, 1),
        ("euler_maruyama", "langevin", 2, 3),
        ("none", "langevin", 1, 1),
        ("ancestral", "annealed_langevin", 3, 4),
    ],  # fmt: skip
)
def test_nfe_counts_real_score_calls(predictor, corrector, n_corr, per_step):
    """The reference counted corrector steps even without a corrector; here nfe is the number of calls made."""
    sde, calls = scoresde.VPSDE(), []
    score = lambda x, t: calls.append(1) or DATA.score(sde, x, t)  # noqa: E731
    opts = {} if n_corr is None else {"n_corrector_steps": n_corr}
    _, info = scoresde.sample(sde, score, (3, 2), steps=7, predictor=predictor, corrector=corrector, **opts)
    assert info.nfe == len(calls) == 7 * per_step + 1


@pytest.mark.parametrize("steps", [1, 2, 5, 10, 20])
def test_vp_ancestral_survives_few_steps(steps):
    """The reference's discrete beta reached 1 for steps <= beta_max and gave NaN. From the exact kernel beta < 1,
    and with the exact score the ancestral rule keeps the exact mean m(t) mu at any step count."""
    sde = scoresde.VPSDE()
    n = 20000
    gen = torch.Generator().manual_seed(steps)
    x_T = DATA.marginal(sde, sde.T).sample(n, generator=gen, dtype=torch.float64)
    x, _ = scoresde.sample(sde, DATA.score_fn(sde), None, start=x_T, solver="ancestral", steps=steps, generator=gen,
                           variance="beta_tilde", denoise=False)  # fmt: skip
    assert bool(torch.isfinite(x).all())
    target = DATA.marginal(sde, 1e-3)
    se = (target.eigvals.max() / n).sqrt()
    torch.testing.assert_close(x.mean(0), target.mean, rtol=0, atol=float(5 * se))
    assert float(torch.cov(x.T).trace()) < float(target.eigvals.sum()) * (1 + 5 * math.sqrt(2 / n))


def test_bad_configurations_are_refused():
    with pytest.raises(ValueError, match="does nothing"):
        PredictorCorrector("none", "none")
    with pytest.raises(ValueError, match=r"predictor must be one of \['ancestral', 'euler_maruyama'"):
        PredictorCorrector("ddim")
    with pytest.raises(ValueError, match="corrector must be one of"):
        PredictorCorrector(corrector="hmc")
    with pytest.raises(ValueError, match="snr must be a positive"):
        PredictorCorrector(snr=-1.0)
    with pytest.raises(ValueError, match="n_steps"):
        PredictorCorrector(n_corrector_steps=0)
    with pytest.raises(ValueError, match="apply only to a corrector named"):
        PredictorCorrector(corrector="none", snr=0.1)
    with pytest.raises(ValueError, match="apply only to a corrector named"):
        PredictorCorrector(corrector=Langevin(), snr=0.1)
