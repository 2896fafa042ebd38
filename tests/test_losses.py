"""Training objectives against their closed-form minima, optimality conditions and Monte-Carlo checks."""

import math

import pytest
import torch

from scoresde import VESDE, VPSDE, SubVPSDE, ddpm_loss, dsm_loss, dsm_loss_per_sample, ncsn_loss
from scoresde.oracle import Gaussian

STD = torch.tensor([0.3, 1.2], dtype=torch.float64)


def _data(event_shape):
    """A diagonal Gaussian whose per-coordinate stds cycle through STD."""
    d = math.prod(event_shape)
    std = STD.repeat(d // 2 + 1)[:d].reshape(event_shape)
    return Gaussian(0.5 * torch.ones(event_shape), std=std)


def _dsm_minimum(sde, data, eps, n=20001):
    """E_t mean_k (1 - s(t)^2 / v_k(t)) for t ~ U(eps, T), by the trapezoid rule."""
    t = torch.linspace(eps, sde.T, n, dtype=torch.float64)
    m, s = sde.mean_scale(t), sde.std(t)
    v = m[:, None] ** 2 * data.eigvals + s[:, None] ** 2
    vals = (1 - s[:, None] ** 2 / v).mean(1)
    return float(torch.trapezoid(vals, t) / (sde.T - eps))


def test_dsm_at_oracle_score_equals_closed_form_minimum(sde, event_shape):
    data = _data(event_shape)
    gen = torch.Generator().manual_seed(0)
    x0 = data.sample(40000, generator=gen, dtype=torch.float64)
    per = dsm_loss_per_sample(sde, data.score_fn(sde), x0, eps=1e-3, generator=gen)
    expected = _dsm_minimum(sde, data, 1e-3)
    assert abs(float(per.mean()) - expected) < 4 * float(per.std()) / math.sqrt(per.numel())


def test_dsm_gradient_vanishes_at_oracle_score(sde):
    """d/d delta of the loss at score + delta * h is ~0 at delta = 0, and delta != 0 costs more."""
    data = _data((2,))
    x0 = data.sample(30000, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    h = lambda x, t: torch.sin(3 * x) + t[:, None]  # an arbitrary perturbation direction

    def loss(delta, weighting="standard"):
        fn = lambda x, t: data.score(sde, x, t) + delta * h(x, t)
        gen = torch.Generator().manual_seed(2)  # common random numbers across delta
        return dsm_loss(sde, fn, x0, eps=1e-2, weighting=weighting, generator=gen)

    for weighting in ("standard", "likelihood"):
        delta = torch.zeros((), dtype=torch.float64, requires_grad=True)
        (grad,) = torch.autograd.grad(loss(delta, weighting), delta)
        delta1 = torch.ones((), dtype=torch.float64, requires_grad=True)
        (grad1,) = torch.autograd.grad(loss(delta1, weighting), delta1)
        assert abs(float(grad)) < 0.05 * abs(float(grad1))
        assert float(loss(0.0, weighting)) < float(loss(0.1, weighting))
        assert float(loss(0.0, weighting)) < float(loss(-0.1, weighting))


@pytest.mark.parametrize("make_sde", [VPSDE, SubVPSDE, lambda: VESDE(0.01, 5.0)], ids=["vp", "subvp", "ve"])
def test_importance_sampling_is_unbiased_and_lower_variance(make_sde):
    sde = make_sde()
    data = _data((2,))
    gen = torch.Generator().manual_seed(3)
    x0 = data.sample(100000, generator=gen, dtype=torch.float64)
    kw = dict(eps=1e-3, weighting="likelihood", generator=gen)
    plain = dsm_loss_per_sample(sde, data.score_fn(sde), x0, **kw)
    weighted = dsm_loss_per_sample(sde, data.score_fn(sde), x0, importance_sampling=True, **kw)
    se = math.sqrt(plain.var() / plain.numel() + weighted.var() / weighted.numel())
    assert abs(float(plain.mean() - weighted.mean())) < 4 * se
    assert float(weighted.var()) < 0.5 * float(plain.var())


def test_importance_times_follow_g2_over_s2():
    """The proposal density is g^2 / s^2 / Z: compare a histogram to it."""
    sde = VPSDE()
    from scoresde.losses import sample_time_importance

    t, w = sample_time_importance(
        sde,
        200000,
        eps=1e-3,
        generator=torch.Generator().manual_seed(0),
        like=torch.zeros(1, dtype=torch.float64),
    )
    edges = torch.linspace(1e-3, 1.0, 11, dtype=torch.float64)
    counts = torch.histc(t, bins=10, min=1e-3, max=1.0) / t.numel()
    Z = float(w[0]) * (1.0 - 1e-3)
    log_sigma2 = 2 * torch.log(sde.sigma(edges))
    expected = (log_sigma2[1:] - log_sigma2[:-1]) / Z
    torch.testing.assert_close(counts, expected, atol=3e-3, rtol=0)


def test_ddpm_loss_at_optimal_noise_predictor():
    data = _data((2,))
    betas = VPSDE().discrete_betas(100)
    abar = torch.cumprod(1 - betas, 0)

    def eps_model(x, i):
        a = abar[i][:, None]
        v = a * data.eigvals + 1 - a
        return (1 - a).sqrt() * (x - a.sqrt() * data.mean) / v

    x0 = data.sample(40000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    loss = ddpm_loss(eps_model, x0, betas, generator=torch.Generator().manual_seed(1))
    v = abar[:, None] * data.eigvals + 1 - abar[:, None]
    expected = float((1 - (1 - abar[:, None]) / v).mean())
    assert abs(float(loss) - expected) < 0.01
    worse = ddpm_loss(lambda x, i: 1.1 * eps_model(x, i), x0, betas, generator=torch.Generator().manual_seed(1))
    assert float(worse) > float(loss)


def test_ncsn_loss_at_optimal_score():
    data = _data((2,))
    sigmas = VESDE(0.01, 5.0).discrete_sigmas(10)

    def score_model(x, i):
        s2 = sigmas[i][:, None] ** 2
        return -(x - data.mean) / (data.eigvals + s2)

    x0 = data.sample(40000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    loss = ncsn_loss(score_model, x0, sigmas, generator=torch.Generator().manual_seed(1))
    s2 = sigmas[:, None] ** 2
    expected = float(0.5 * (1 - s2 / (data.eigvals + s2)).mean())
    assert abs(float(loss) - expected) < 0.01


def test_reduce_sum_scales_with_dims():
    sde = VPSDE()
    data = _data((3, 4, 4))
    x0 = data.sample(8, generator=torch.Generator().manual_seed(0))
    fn = data.score_fn(sde)
    a = dsm_loss(sde, fn, x0, reduce="mean", generator=torch.Generator().manual_seed(5))
    b = dsm_loss(sde, fn, x0, reduce="sum", generator=torch.Generator().manual_seed(5))
    torch.testing.assert_close(b, 48 * a)


def test_loss_errors():
    sde = VPSDE()
    x0 = torch.zeros(4, 2)
    fn = lambda x, t: x
    with pytest.raises(ValueError, match="weighting"):
        dsm_loss(sde, fn, x0, weighting="snr")
    with pytest.raises(ValueError, match="reduce"):
        dsm_loss(sde, fn, x0, reduce="max")
    with pytest.raises(ValueError, match="importance_sampling"):
        dsm_loss(sde, fn, x0, importance_sampling=True)
    with pytest.raises(ValueError, match="eps"):
        dsm_loss(sde, fn, x0, eps=0.0)
    with pytest.raises(ValueError, match="non-finite"):
        dsm_loss(sde, fn, torch.full((4, 2), float("nan")))
    with pytest.raises(ValueError, match="x0 must be"):
        dsm_loss(sde, fn, torch.zeros(4))
    with pytest.raises(ValueError, match="returned shape"):
        dsm_loss(sde, lambda x, t: x[:, :1], x0)
    with pytest.raises(ValueError, match="betas"):
        ddpm_loss(lambda x, i: x, x0, torch.tensor([0.1, 1.0]))
    with pytest.raises(ValueError, match="sigmas"):
        ncsn_loss(lambda x, i: x, x0, torch.tensor([0.0, 1.0]))
