"""The particle filter's ensemble correction (ensemble=True): the Jacobian fit against the exact one, and the filter."""

import pytest
import torch
from conditioning_checks import SDES, fd_ratio, gaussian_problem
from test_colorization import colour_gaussian

import scoresde
from scoresde.conditioning import to_grey
from scoresde.conditioning.ensemble import EnsembleJacobian, ObservedCovariance
from scoresde.conditioning.smc import ParticleFilter
from scoresde.oracle import gaussian_mean_cov


def particles_and_exact_jacobian(k: int, t: float = 0.3):
    """K particles of one sample with the observed coordinates shared, their x0_hat, and d x0_hat / d x exactly."""
    g, _, mask, _ = gaussian_problem()
    mu, cov = gaussian_mean_cov(g)
    sde = scoresde.VPSDE()
    tt = torch.tensor(t, dtype=torch.float64)
    m, s = float(sde.mean_scale(tt)), float(sde.std(tt))
    x = m * mu + 0.3 * torch.randn(k, 12, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x[:, mask] = x[0, mask]
    x0 = (x + s**2 * g.score(sde, x, tt.expand(k))) / m
    eye = torch.eye(12, dtype=torch.float64)
    jac = (eye - s**2 * torch.linalg.inv(m**2 * cov + s**2 * eye)) / m  # (I + s^2 grad score) / m, Gaussian data
    return x, x0, mask, jac


def test_the_fit_recovers_the_exact_jacobian_of_gaussian_data():
    """With K - 1 >= the number of free coordinates, the least-squares fit is J itself on them."""
    x, x0, mask, jac = particles_and_exact_jacobian(k=10)
    free = (~mask).double()[None, None]
    fit = EnsembleJacobian.fit(x[None], x0[None], free)
    d = torch.zeros(1, 10, 12, dtype=torch.float64)
    d[..., mask] = torch.randn(1, 10, 6, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    torch.testing.assert_close(fit.transpose_times(d)[..., ~mask], (d @ jac)[..., ~mask])  # (J^T d)_u = J_uo d
    juu = jac[~mask][:, ~mask]
    reps = 2000  # the same fit for many samples: 2000 x 10 draws of the noise
    many = EnsembleJacobian(*(v.expand(reps, *v.shape[1:]) for v in (fit.dz, fit.dx0, fit.pinv, fit.rank, fit.quad)))
    xi = torch.randn(reps, 10, 10, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    noise = many.sqrt_noise(xi).reshape(-1, 12)
    torch.testing.assert_close(torch.cov(noise[:, ~mask].T), juu, atol=0.03 * float(juu.max()), rtol=0)
    assert float(noise[:, mask].abs().max()) == 0.0


def test_a_single_particle_gives_no_correction():
    x, x0, mask, _ = particles_and_exact_jacobian(k=1)
    fit = EnsembleJacobian.fit(x[None], x0[None], (~mask).double()[None, None])
    assert int(fit.rank) == 1 and float(fit.pinv.abs().max()) == 0.0
    assert float(fit.sqrt_noise(torch.ones(1, 1, 1, dtype=torch.float64)).abs().max()) == 0.0


def test_observed_covariance_solves_exactly_when_the_directions_span_the_observed_coordinates():
    _, _, mask, jac = particles_and_exact_jacobian(k=4)
    gen = torch.Generator().manual_seed(3)
    d = torch.zeros(2, 4, 12, dtype=torch.float64)
    d[..., mask] = torch.randn(2, 4, 6, generator=gen, dtype=torch.float64)
    dx0 = torch.randn(2, 4, 12, generator=gen, dtype=torch.float64)
    observed = mask.double()[None, None]
    assert float(ObservedCovariance.directions(d, 0 * dx0, observed, r=3).square().sum()) == pytest.approx(2.0)  # d_bar
    q = ObservedCovariance.directions(d, dx0, observed, r=5)  # with K = 4: d_bar and 4 directions of dx0
    torch.testing.assert_close(q @ q.transpose(1, 2), torch.eye(5, dtype=torch.float64).expand(2, 5, 5))
    assert float(q[..., ~mask].abs().max()) == 0.0
    extra = torch.zeros(2, 1, 12, dtype=torch.float64)
    extra[..., mask] = torch.linalg.svd(q[..., mask], full_matrices=True)[2][:, -1:]  # orthogonal to the five
    q = torch.cat([q, extra], 1)  # a sixth direction: Q spans the observed coordinates
    gamma = 0.3 * jac  # any symmetric positive definite Gamma
    cov = ObservedCovariance(q, q @ gamma @ q.transpose(1, 2), lam2=0.05, c0=0.4)
    s_oo = 0.05 * torch.eye(6, dtype=torch.float64) + 0.16 * gamma[mask][:, mask]
    torch.testing.assert_close(cov.solve(d)[..., mask], torch.linalg.solve(s_oo, d[..., mask].transpose(1, 2)).mT)


def test_ensemble_options_and_evaluation_count():
    with pytest.raises(ValueError, match="ensemble"):
        ParticleFilter(ensemble=True, kernel="euler_maruyama")
    with pytest.raises(ValueError, match="probes"):
        ParticleFilter(ensemble=True, probes=0)
    g, y0, mask, _ = gaussian_problem()
    sde = scoresde.VPSDE()
    x, info = scoresde.inpaint(sde, g.score_fn(sde), y0.expand(3, 12).clone(), mask, method="smc", particles=5,
                               ensemble=True, probes=2, nfe=100)  # fmt: skip
    steps = info.steps  # 5 (steps + 1) particle evaluations and 3 probes per step on one state
    assert info.nfe == 5 * (steps + 1) + 3 * steps <= 100 and 5 * (steps + 2) + 3 * (steps + 1) > 100
    assert info.extras["score_calls"] == 4 * steps + 1 and info.extras["probes"] == 2 and info.extras["ensemble"]
    torch.testing.assert_close(x[:, mask], y0.expand(3, 12)[:, mask].to(x.dtype))


def test_colorization_with_the_ensemble_correction_keeps_the_grey_level():
    g, sde = colour_gaussian(), scoresde.VPSDE()
    grey = to_grey(g.sample(4, generator=torch.Generator().manual_seed(0)))
    x, info = scoresde.colorize(sde, g.score_fn(sde), grey, method="smc", particles=4, ensemble=True, nfe=100,
                                generator=torch.Generator().manual_seed(1))  # fmt: skip
    assert info.nfe <= 100 and bool(torch.isfinite(x).all())
    torch.testing.assert_close(to_grey(x), grey)


@pytest.mark.parametrize(
    "sde_name", ["vp", pytest.param("subvp", marks=pytest.mark.slow), pytest.param("ve", marks=pytest.mark.slow)]
)
def test_ensemble_filter_is_near_the_floor_at_1000_evaluations(sde_name):
    """500 samples per run, exact score, K = 30 with 6 probes: 26 steps in 1000 evaluations; the mean FD / floor of
    three runs (seeds 0-2).

    A single run's ratio is too noisy to test a claim: on VP the three runs gave 0.73 / 1.04 / 2.99 (mean 1.59),
    and 500 exact posterior draws themselves range 0.38-1.56 (20 seeds). The documented figure, 1.21 / 0.80 / 0.86
    (VP / sub-VP / VE), is the mean of seeds 30-32 at 4000 samples (benchmarks/results/
    inpainting_accuracy_seeds_ensemble.md); this test guards the same behaviour at a cost CI can pay, with a bound
    (mean < 2) of about twice that figure, to leave room for the noise of 500-sample runs.
    """
    g, y0, mask, post = gaussian_problem()
    sde = SDES[sde_name]()
    ratios = []
    for seed in range(3):
        x, info = scoresde.inpaint(sde, g.score_fn(sde), y0.expand(500, 12).clone(), mask, method="smc",
                                   particles=30, ensemble=True, nfe=1000,
                                   generator=torch.Generator().manual_seed(seed))  # fmt: skip
        assert info.nfe <= 1000
        ratios.append(fd_ratio(post, x))
    assert sum(ratios) / len(ratios) < 2.0, ratios
