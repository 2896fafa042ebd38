"""The analytic oracle against autograd, torch.distributions and the probability-flow ODE itself."""

import math

import pytest
import torch

from scoresde.oracle import (
    Gaussian,
    GaussianMixture,
    anisotropic_gaussian,
    eight_gaussians,
    gaussian_mean_cov,
)


def _full_gaussian(event_shape, seed=0):
    g = torch.Generator().manual_seed(seed)
    d = math.prod(event_shape)
    a = torch.randn(d, d, generator=g, dtype=torch.float64)
    return Gaussian(torch.randn(event_shape, generator=g, dtype=torch.float64), cov=a @ a.T / d + 0.1 * torch.eye(d))


def _autograd_score(log_prob, x):
    x = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(log_prob(x).sum(), x)
    return grad


def test_marginal_log_prob_is_the_noised_gaussian(sde):
    data = _full_gaussian((3,))
    x = torch.randn(7, 3, dtype=torch.float64)
    t = 0.4
    mean, cov = gaussian_mean_cov(data)
    m, s = float(sde.mean_scale(t)), float(sde.std(t))
    mvn = torch.distributions.MultivariateNormal(m * mean, m**2 * cov + s**2 * torch.eye(3, dtype=torch.float64))
    torch.testing.assert_close(data.log_prob_t(sde, x, t), mvn.log_prob(x))
    torch.testing.assert_close(data.marginal(sde, t).log_prob(x), mvn.log_prob(x))


def test_scores_are_gradients_of_log_densities(sde, event_shape):
    x = torch.randn(5, *event_shape, dtype=torch.float64)
    t = torch.rand(5, dtype=torch.float64) * 0.9 + 0.05
    gauss = _full_gaussian(event_shape)
    mix = GaussianMixture([gauss, Gaussian(torch.ones(event_shape), std=0.3)], weights=[0.3, 0.7])
    for dist in (gauss, mix):
        expected = _autograd_score(lambda y, dist=dist: dist.log_prob_t(sde, y, t), x)
        torch.testing.assert_close(dist.score(sde, x, t), expected)


def test_flow_map_solves_the_probability_flow_ode(sde, event_shape):
    data = _full_gaussian(event_shape, seed=1)
    x0 = data.sample(4, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    t, h = 0.5, 1e-5
    x_t = data.flow(sde, x0, 1e-3, t)
    dxdt = (data.flow(sde, x0, 1e-3, t + h) - data.flow(sde, x0, 1e-3, t - h)) / (2 * h)
    drift, _ = sde.reverse(data.score_fn(sde), probability_flow=True).sde(x_t, t)
    torch.testing.assert_close(dxdt, drift, rtol=1e-6, atol=1e-7)
    # the map is invertible and composes
    torch.testing.assert_close(data.flow(sde, x_t, t, 1e-3), x0)
    torch.testing.assert_close(data.flow(sde, data.flow(sde, x0, 1e-3, 0.2), 0.2, t), x_t)


def test_flow_logdet_matches_jacobian(sde):
    data = _full_gaussian((4,), seed=2)
    x = torch.randn(1, 4, dtype=torch.float64)
    jac = torch.autograd.functional.jacobian(lambda y: data.flow(sde, y.unsqueeze(0), 0.01, 1.0)[0], x[0])
    torch.testing.assert_close(data.flow_logdet(sde, 0.01, 1.0), torch.linalg.slogdet(jac).logabsdet)


def test_flow_pushes_data_to_the_marginal(sde):
    """x_0 ~ p_0 mapped by the flow has the moments of p_T: the map transports the marginals."""
    data = anisotropic_gaussian(8)
    x0 = data.sample(40000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    xT = data.flow(sde, x0, 0.0, 1.0)
    mean, cov = gaussian_mean_cov(data.marginal(sde, 1.0))
    torch.testing.assert_close(xT.mean(0), mean, atol=4 * float(cov.diagonal().max().sqrt()) / 200, rtol=0)
    torch.testing.assert_close(torch.cov(xT.T), cov, atol=0.03 * float(cov.diagonal().max()), rtol=0)


def test_ode_log_prob_is_prior_plus_logdet(sde):
    data = _full_gaussian((3,))
    x = torch.randn(5, 3, dtype=torch.float64)
    z = data.flow(sde, x, 1e-5, 1.0)
    torch.testing.assert_close(data.ode_log_prob(sde, x), sde.prior_logp(z) + data.flow_logdet(sde, 1e-5, 1.0))


def test_sampling_moments_and_log_prob():
    data = _full_gaussian((3,), seed=4)
    x = data.sample(50000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    mean, cov = gaussian_mean_cov(data)
    torch.testing.assert_close(x.mean(0), mean, atol=0.02, rtol=0)
    torch.testing.assert_close(torch.cov(x.T), cov, atol=0.03, rtol=0)
    mvn = torch.distributions.MultivariateNormal(mean, cov)
    torch.testing.assert_close(data.log_prob(x[:10]), mvn.log_prob(x[:10]))


def test_mixture_sampling_weights_and_moments():
    mix = eight_gaussians(weights=[1, 2, 3, 4, 1, 2, 3, 4])
    x, labels = mix.sample_with_labels(40000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    freq = torch.bincount(labels, minlength=8).double() / 40000
    p = mix.weights
    assert bool((abs(freq - p) < 5 * torch.sqrt(p * (1 - p) / 40000)).all())
    # samples sit on their modes: responsibilities recover the labels
    assert float((mix.responsibilities(None, x).argmax(1) == labels).double().mean()) > 0.999
    mean, cov = mix.mean_cov()
    torch.testing.assert_close(x.mean(0), mean, atol=0.04, rtol=0)
    torch.testing.assert_close(torch.cov(x.T), cov, atol=0.06, rtol=0)


def test_bad_oracle_arguments():
    with pytest.raises(ValueError, match="exactly one"):
        Gaussian(torch.zeros(2))
    with pytest.raises(ValueError, match="positive definite"):
        Gaussian(torch.zeros(2), std=torch.tensor([1.0, 0.0]))
    with pytest.raises(ValueError, match="symmetric"):
        Gaussian(torch.zeros(2), cov=torch.tensor([[1.0, 0.5], [0.0, 1.0]]))
    with pytest.raises(ValueError, match="event shape"):
        GaussianMixture([Gaussian(torch.zeros(2), std=1.0), Gaussian(torch.zeros(3), std=1.0)])
    with pytest.raises(ValueError, match=r"x must have shape \(B, 2\)"):
        Gaussian(torch.zeros(2), std=1.0).log_prob(torch.zeros(4, 3))
