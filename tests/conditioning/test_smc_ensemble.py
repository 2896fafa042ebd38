"""The particle filter's ensemble correction (ensemble=True): the Jacobian fit against the exact one, and the filter."""

import pytest
import torch
from conditioning_checks import SDES, fd_ratio, gaussian_problem
from test_colorization import colour_gaussian

import scoresde
from scoresde.conditioning import to_grey
from scoresde.conditioning.ensemble import EnsembleJacobian
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
    torch.testing.assert_close(fit.mean_eigenvalue(), torch.linalg.eigvalsh(juu).mean()[None])
    reps = 2000  # the same fit for many samples: 2000 x 10 draws of the noise
    many = EnsembleJacobian(*(v.expand(reps, *v.shape[1:]) for v in (fit.dz, fit.dx0, fit.pinv, fit.rank, fit.quad)))
    xi = torch.randn(reps, 10, 10, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    noise = many.sqrt_noise(xi).reshape(-1, 12)
    torch.testing.assert_close(torch.cov(noise[:, ~mask].T), juu, atol=0.03 * float(juu.max()), rtol=0)
    assert float(noise[:, mask].abs().max()) == 0.0


def test_a_single_particle_gives_no_correction():
    x, x0, mask, _ = particles_and_exact_jacobian(k=1)
    fit = EnsembleJacobian.fit(x[None], x0[None], (~mask).double()[None, None])
    assert float(fit.mean_eigenvalue()) == 0.0
    assert float(fit.sqrt_noise(torch.ones(1, 1, 1, dtype=torch.float64)).abs().max()) == 0.0


def test_ensemble_needs_the_ancestral_kernel():
    with pytest.raises(ValueError, match="ensemble"):
        ParticleFilter(ensemble=True, kernel="euler_maruyama")
    assert ParticleFilter(ensemble=True).describe()["ensemble"]


def test_colorization_with_the_ensemble_correction_keeps_the_grey_level():
    g, sde = colour_gaussian(), scoresde.VPSDE()
    grey = to_grey(g.sample(4, generator=torch.Generator().manual_seed(0)))
    x, info = scoresde.colorize(sde, g.score_fn(sde), grey, method="smc", particles=4, ensemble=True, nfe=100,
                                generator=torch.Generator().manual_seed(1))  # fmt: skip
    assert info.nfe <= 100 and bool(torch.isfinite(x).all())
    torch.testing.assert_close(to_grey(x), grey)


@pytest.mark.slow
@pytest.mark.parametrize("sde_name", sorted(SDES))
def test_ensemble_filter_is_near_the_floor_at_1000_evaluations(sde_name):
    """500 samples, exact score, K = 20, 49 steps."""
    g, y0, mask, post = gaussian_problem()
    sde = SDES[sde_name]()
    x, info = scoresde.inpaint(sde, g.score_fn(sde), y0.expand(500, 12).clone(), mask, method="smc", particles=20,
                               ensemble=True, nfe=1000, generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert info.nfe <= 1000
    assert fd_ratio(post, x) < 3.0
