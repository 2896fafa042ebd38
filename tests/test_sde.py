"""The SDE library against closed forms and against simulation of the forward SDE."""

import math

import pytest
import torch

import scoresde
from scoresde import VESDE, VPSDE, SubVPSDE
from scoresde.oracle import Gaussian


def test_coefficients_solve_the_moment_odes(sde):
    """dm/dt = f m and d(s^2)/dt = 2 f s^2 + g^2 (finite differences in float64)."""
    t = torch.linspace(0.05, 0.95, 19, dtype=torch.float64)
    h = 1e-6
    dm = (sde.mean_scale(t + h) - sde.mean_scale(t - h)) / (2 * h)
    ds2 = (sde.std(t + h) ** 2 - sde.std(t - h) ** 2) / (2 * h)
    m, s2 = sde.mean_scale(t), sde.std(t) ** 2
    torch.testing.assert_close(dm, sde.f(t) * m, rtol=1e-6, atol=1e-8)
    torch.testing.assert_close(ds2, 2 * sde.f(t) * s2 + sde.g2(t), rtol=1e-6, atol=1e-8)
    assert float(sde.std(torch.tensor(0.0, dtype=torch.float64))) == 0.0
    assert float(sde.mean_scale(torch.tensor(0.0, dtype=torch.float64))) == 1.0


def test_paper_coefficients():
    vp, sub, ve = VPSDE(), SubVPSDE(), VESDE(sigma_min=0.01, sigma_max=50.0)
    t = torch.tensor([0.0, 0.3, 1.0], dtype=torch.float64)
    beta = 0.1 + t * 19.9
    B = 0.1 * t + 0.5 * 19.9 * t**2
    torch.testing.assert_close(vp.g2(t), beta)
    torch.testing.assert_close(vp.f(t), -0.5 * beta)
    torch.testing.assert_close(vp.std(t) ** 2, 1 - torch.exp(-B))
    torch.testing.assert_close(sub.g2(t), beta * (1 - torch.exp(-2 * B)))
    torch.testing.assert_close(sub.std(t), 1 - torch.exp(-B))
    sigma = 0.01 * (50.0 / 0.01) ** t
    torch.testing.assert_close(ve.noise_level(t), sigma)
    torch.testing.assert_close(ve.g2(t), sigma**2 * 2 * math.log(5000.0))
    torch.testing.assert_close(ve.std(t) ** 2, sigma**2 - 0.01**2)
    assert ve.prior_std == 50.0 and vp.prior_std == 1.0


@pytest.mark.parametrize("t_end", [0.3, 1.0])
def test_marginal_prob_matches_simulation(sde, t_end):
    """Euler-Maruyama with 1000 steps of the forward SDE reproduces m(t) x0 and s(t)^2."""
    gen = torch.Generator().manual_seed(0)
    n, steps = 20000, 1000
    x0 = torch.tensor([0.8, -1.5], dtype=torch.float64).expand(n, 2)
    x, dt = x0.clone(), t_end / steps
    for i in range(steps):
        drift, g = sde.sde(x, i * dt)
        x = x + drift * dt + g[:, None] * math.sqrt(dt) * torch.randn(x.shape, generator=gen, dtype=x.dtype)
    mean, std = sde.marginal_prob(x0[:1], t_end)
    var = float(std[0]) ** 2
    se_mean = math.sqrt(var / n)
    torch.testing.assert_close(x.mean(0), mean[0], atol=5 * se_mean + 2e-3, rtol=0)
    # sample variance: standard error var * sqrt(2 / n); Euler bias O(dt) on top
    assert abs(x.var(0) - var).max() < 5 * var * math.sqrt(2 / n) + 2e-3 * var


def test_discretize_is_the_exact_kernel(sde, event_shape):
    """Composing the one-step kernels on a coarse grid gives exactly the marginal at the end."""
    x0 = torch.randn(4, *event_shape, dtype=torch.float64)
    grid = torch.tensor([0.0, 0.1, 0.35, 0.4, 1.0], dtype=torch.float64)
    mean, var = x0.clone(), torch.zeros(4, dtype=torch.float64)
    for t_prev, t in zip(grid[:-1], grid[1:], strict=True):
        f, G = sde.discretize(mean, float(t), float(t - t_prev))
        r = (mean + f) / mean
        var = r.reshape(4, -1)[:, 0] ** 2 * var + G**2
        mean = mean + f
    exp_mean, exp_std = sde.marginal_prob(x0, 1.0)
    torch.testing.assert_close(mean, exp_mean)
    torch.testing.assert_close(var, exp_std**2)


def test_vp_discretize_is_ddpm_and_never_degenerates():
    vp = VPSDE()
    x = torch.ones(3, 2, dtype=torch.float64)
    for steps in (1, 2, 5, 20):  # steps <= beta_max: the reference's betas reach 1 here
        f, G = vp.discretize(x, 1.0, 1.0 / steps)
        beta = G**2
        assert bool(((beta > 0) & (beta < 1)).all())
        torch.testing.assert_close(x + f, torch.sqrt(1 - beta)[:, None] * x)
    betas = vp.discrete_betas(1000)
    assert math.isclose(float(betas[0]), 1e-4) and math.isclose(float(betas[-1]), 0.02)
    # abar_i of DDPM converges to m(t_i)^2 of the VP SDE
    abar = torch.cumprod(1 - betas, 0)
    t = torch.arange(1, 1001, dtype=torch.float64) / 1000
    torch.testing.assert_close(abar, vp.mean_scale(t) ** 2, rtol=2e-2, atol=1e-4)


def test_ve_discrete_sigmas_are_geometric():
    ve = VESDE(sigma_min=0.01, sigma_max=50.0)
    s = ve.discrete_sigmas(10)
    ratios = s[1:] / s[:-1]
    torch.testing.assert_close(ratios, ratios[0].expand(9))
    assert math.isclose(float(s[0]), 0.01) and math.isclose(float(s[-1]), 50.0)
    with pytest.raises(ValueError, match="sub-VP"):
        SubVPSDE().discrete_betas(10)


def test_prior_logp_is_the_normal_density(sde, event_shape):
    z = sde.prior_sampling((5, *event_shape), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    expected = torch.distributions.Normal(0.0, sde.prior_std).log_prob(z).reshape(5, -1).sum(1)
    torch.testing.assert_close(sde.prior_logp(z), expected)


def test_prior_sampling_reproducible_and_scaled(sde):
    a = sde.prior_sampling((20000, 2), generator=torch.Generator().manual_seed(3))
    b = sde.prior_sampling((20000, 2), generator=torch.Generator().manual_seed(3))
    assert torch.equal(a, b) and a.dtype == torch.float32
    assert abs(float(a.std()) / sde.prior_std - 1) < 0.02
    assert sde.prior_sampling((2, 2), dtype=torch.float64).dtype == torch.float64


def test_sigma_inverse(sde):
    t = torch.linspace(0.01, 1.0, 50, dtype=torch.float64)
    torch.testing.assert_close(sde.t_from_sigma(sde.sigma(t)), t, rtol=1e-9, atol=1e-9)


def test_reverse_drift_with_oracle_score(sde, event_shape):
    data = Gaussian(torch.zeros(event_shape), std=0.5)
    score_fn = data.score_fn(sde)
    x = torch.randn(6, *event_shape, dtype=torch.float64)
    t = torch.rand(6, dtype=torch.float64) * 0.9 + 0.05
    g2 = sde.g2(t).reshape(-1, *[1] * len(event_shape))
    f = sde.f(t).reshape(g2.shape)
    closed = f * x + g2 * (x / (sde.mean_scale(t).reshape(g2.shape) ** 2 * 0.25 + sde.std(t).reshape(g2.shape) ** 2))
    drift, diffusion = sde.reverse(score_fn).sde(x, t)
    torch.testing.assert_close(drift, f * x - g2 * score_fn(x, t))
    torch.testing.assert_close(diffusion, sde.g(t))
    ode_drift, ode_diff = sde.reverse(score_fn, probability_flow=True).sde(x, t)
    torch.testing.assert_close(ode_drift, f * x - 0.5 * g2 * score_fn(x, t))
    torch.testing.assert_close(ode_drift, 0.5 * (f * x + closed))
    assert bool((ode_diff == 0).all())
    rev_f, rev_G = sde.reverse(score_fn, probability_flow=True).discretize(x, t, 0.01)
    f_fwd, G_fwd = sde.discretize(x, t, 0.01)
    torch.testing.assert_close(rev_f, f_fwd - 0.5 * G_fwd.reshape(g2.shape) ** 2 * score_fn(x, t))
    assert bool((rev_G == 0).all())


def test_dtype_and_float_time(sde, event_shape):
    for dtype in (torch.float32, torch.float64):
        x = torch.randn(3, *event_shape, dtype=dtype)
        mean, std = sde.marginal_prob(x, 0.5)
        drift, g = sde.sde(x, torch.full((3,), 0.5, dtype=dtype))
        assert mean.dtype == std.dtype == drift.dtype == g.dtype == dtype
        assert mean.shape == x.shape and std.shape == (3,)


@pytest.mark.parametrize(
    "make, match",
    [
        (lambda: VPSDE(beta_min=1.0, beta_max=0.5), "beta_max"),
        (lambda: VPSDE(beta_min=0.0), "beta_min"),
        (lambda: SubVPSDE(beta_min=-1.0), "beta_min"),
        (lambda: VESDE(sigma_min=1.0, sigma_max=1.0), "sigma_min"),
        (lambda: VESDE(sigma_min=float("nan")), "sigma_min"),
        (lambda: VPSDE(T=0), "T"),
    ],
)
def test_bad_parameters(make, match):
    with pytest.raises(ValueError, match=match):
        make()


def test_bad_inputs(sde):
    x = torch.zeros(4, 2)
    with pytest.raises(ValueError, match=r"t must lie in \[0"):
        sde.marginal_prob(x, 1.5)
    with pytest.raises(ValueError, match=r"t must lie in \[0"):
        sde.sde(x, torch.tensor([0.1, 0.2, -0.1, 0.3]))
    with pytest.raises(ValueError, match=r"shape \(4,\)"):
        sde.sde(x, torch.tensor([0.1, 0.2]))
    with pytest.raises(ValueError, match="noise"):
        sde.perturb(x, 0.5, torch.zeros(3, 2))
    with pytest.raises(ValueError, match="dt must be positive"):
        sde.discretize(x, 0.5, -0.1)
    with pytest.raises(ValueError, match="t - dt"):
        sde.discretize(x, 0.1, 0.5)
    with pytest.raises(ValueError, match="shape"):
        sde.prior_sampling((0, 2))
    with pytest.raises(ValueError, match="score_fn returned shape"):
        sde.reverse(lambda x, t: x[:, :1]).sde(x, 0.5)
    with pytest.raises(TypeError, match="callable"):
        sde.reverse("not a function")


def test_public_exports():
    for name in ("VPSDE", "VESDE", "SubVPSDE", "dsm_loss", "ddpm_loss", "ncsn_loss"):
        assert hasattr(scoresde, name)


def test_accelerator_times_are_not_read_back(sde):
    """Time tensors off the CPU are not range-checked: reading them would sync the device every call."""
    t = torch.full((3,), 0.5, device="meta")
    assert sde.std(t).device.type == "meta"
    x = torch.zeros(3, 2, device="meta")
    assert sde.marginal_prob(x, t).mean.device.type == "meta"


def test_sdes_are_equal_by_class_and_parameters():
    assert scoresde.VPSDE(0.1, 20.0) == scoresde.VPSDE(0.1, 20.0)
    assert hash(scoresde.VPSDE(0.1, 20.0)) == hash(scoresde.VPSDE(0.1, 20.0))
    assert scoresde.VPSDE(0.1, 20.0) != scoresde.VPSDE(0.1, 19.0)
    assert scoresde.VPSDE() != scoresde.SubVPSDE()  # same parameters, another process
    assert scoresde.VESDE(0.01, 50.0) == scoresde.VESDE(0.01, 50.0, T=1.0) != scoresde.VESDE(0.01, 50.0, T=2.0)
    assert len({scoresde.VPSDE(), scoresde.VPSDE(), scoresde.VESDE()}) == 2
    assert scoresde.VPSDE() != "VPSDE(beta_min=0.1, beta_max=20.0, T=1.0)"


@pytest.mark.parametrize("sde", [scoresde.VPSDE(), scoresde.SubVPSDE(), scoresde.VESDE()], ids=repr)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_coefficients_match_the_checked_accessors_in_the_callers_dtype(sde, dtype):
    t = torch.linspace(0.01, 1.0, 7, dtype=dtype)
    co = sde.coefficients(t)
    for got, want in zip(co, (sde.f(t), sde.g2(t), sde.mean_scale(t), sde.std(t)), strict=True):
        assert got.dtype == dtype and got.shape == t.shape
        torch.testing.assert_close(got, want)
