"""Classifier guidance and classifier-free guidance against the analytic oracle.

With mixture data the exact noisy classifier p_t(k | x_t) and the exact conditional scores are known for every SDE
(scoresde.conditioning.mixture), so guided samplers must sample the requested component with its exact moments.
"""

import math

import numpy as np
import pytest
import torch
from scipy.integrate import solve_ivp

import scoresde
from scoresde.conditioning import (
    ClassifierFreeGuidance,
    ClassifierGuidance,
    ComponentPosterior,
    ComponentScore,
    classifier_free_guidance,
    classifier_guidance,
)
from scoresde.oracle import Gaussian, eight_gaussians, gaussian_mean_cov

MIX = eight_gaussians()  # 8 modes of std 0.15 on a circle of radius 2
EPS = 1e-3


def _random_xt(sde, n=64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    t = EPS + (sde.T - EPS) * torch.rand(n, generator=gen, dtype=torch.float64)
    x0 = MIX.sample(n, generator=gen, dtype=torch.float64)
    return sde.perturb(x0, t, torch.randn(x0.shape, generator=gen, dtype=torch.float64)), t


# ---------------------------------------------------------------------------------------------- exact identities
def test_component_posterior_is_the_normalised_responsibility(sde):
    x, t = _random_xt(sde)
    log_p = ComponentPosterior(MIX, sde)(x, t)
    torch.testing.assert_close(log_p.exp(), MIX.responsibilities(sde, x, t), rtol=1e-10, atol=1e-12)
    torch.testing.assert_close(log_p.logsumexp(1), torch.zeros(x.shape[0], dtype=torch.float64))


def test_classifier_guidance_at_scale_one_is_the_component_score(sde):
    """Bayes: grad log p_t(x) + grad log p_t(k | x) = grad log p_t(x | k), the k-th component's noised score."""
    x, t = _random_xt(sde)
    y = torch.arange(x.shape[0]) % 8
    guided = classifier_guidance(MIX.score_fn(sde), ComponentPosterior(MIX, sde), y, scale=1.0)
    with torch.no_grad():  # the samplers call score functions under no_grad: the gradient is enabled locally
        out = guided(x, t)
    expected = torch.stack([MIX.components[int(k)].score(sde, x[i : i + 1], t[i : i + 1])[0] for i, k in enumerate(y)])
    torch.testing.assert_close(out, expected, rtol=1e-8, atol=1e-8)


def test_classifier_guidance_scale_is_linear(sde):
    x, t = _random_xt(sde)
    clf, score = ComponentPosterior(MIX, sde), MIX.score_fn(sde)
    s0, s1, s3 = (classifier_guidance(score, clf, 2, scale=w)(x, t) for w in (0.0, 1.0, 3.0))
    torch.testing.assert_close(s0, score(x, t))
    torch.testing.assert_close(s3 - s0, 3 * (s1 - s0))


def test_classifier_guidance_accepts_logits():
    """Logits shifted by any per-sample constant give the same gradient as the log-probabilities."""
    sde = scoresde.VPSDE()
    x, t = _random_xt(sde)
    clf = ComponentPosterior(MIX, sde)
    shifted = lambda x, t: clf(x, t) + 5.0 * x.sum(1, keepdim=True) ** 2  # noqa: E731
    a = classifier_guidance(MIX.score_fn(sde), clf, 1)(x, t)
    b = classifier_guidance(MIX.score_fn(sde), shifted, 1)(x, t)
    torch.testing.assert_close(a, b)


def test_cfg_at_zero_is_the_conditional_score_and_calls_once(sde):
    x, t = _random_xt(sde)
    calls = []
    cond = ComponentScore(MIX, sde)

    def counted(x, t, y):
        calls.append(x.shape[0])
        return cond(x, t, y)

    counted.num_classes = 8
    y = torch.arange(x.shape[0]) % 8
    out = classifier_free_guidance(counted, y, 0.0)(x, t)
    expected = torch.stack([MIX.components[int(k)].score(sde, x[i : i + 1], t[i : i + 1])[0] for i, k in enumerate(y)])
    torch.testing.assert_close(out, expected)
    assert calls == [x.shape[0]]
    classifier_free_guidance(counted, y, 2.0)(x, t)
    assert calls[-1] == 2 * x.shape[0]  # conditional and unconditional in one stacked call


def test_cfg_is_the_score_of_the_tilted_gaussian(sde):
    """For Gaussian class and data laws, (1 + w) s_c - w s_u is, at every t, the score of the Gaussian
    p_t(x | y)^(1 + w) / p_t(x)^w: precision (1 + w) / v_c - w / v_u, mean m ((1 + w) mu_c / v_c - w mu_u / v_u) / a."""
    cond, uncond, w = Gaussian([1.0, -0.5], std=0.3), Gaussian([0.0, 0.0], std=1.0), 2.0
    score = lambda x, t, y: torch.where((y == 0)[:, None], cond.score(sde, x, t), uncond.score(sde, x, t))  # noqa: E731
    x, t = _random_xt(sde)
    out = classifier_free_guidance(score, 0, w, null_label=1)(x, t)
    m, s2 = sde.mean_scale(t)[:, None], sde.std(t)[:, None] ** 2
    v_c, v_u = m**2 * 0.09 + s2, m**2 + s2
    a = (1 + w) / v_c - w / v_u
    mean = m * (1 + w) * cond.mean / v_c / a
    torch.testing.assert_close(out, -a * (x - mean))


# ---------------------------------------------------------------------------------------------- sampling
def _check_component_samples(x: torch.Tensor, sde, k: int) -> None:
    """>= 98% of the samples in component k (by the data's exact responsibilities), with its p_eps moments."""
    n = x.shape[0]
    assigned = MIX.responsibilities(None, x.double()).argmax(1)
    assert (assigned == k).double().mean() >= 0.98
    mean, cov = gaussian_mean_cov(MIX.components[k].marginal(sde, EPS))
    x = x.double()
    # standard errors of a sample mean and covariance of n Gaussian draws
    mean_se = (torch.diagonal(cov) / n).sqrt()
    cov_se = ((torch.outer(torch.diagonal(cov), torch.diagonal(cov)) + cov**2) / n).sqrt()
    assert ((x.mean(0) - mean).abs() < 5 * mean_se).all(), (x.mean(0), mean)
    assert ((torch.cov(x.T) - cov).abs() < 5 * cov_se).all(), (torch.cov(x.T), cov)


@pytest.mark.parametrize("k", [3])
def test_classifier_guided_sampling_draws_the_component(sde, k):
    """Classifier guidance at scale 1 with the exact noisy classifier + reverse-SDE sampler -> component k."""
    guided = classifier_guidance(MIX.score_fn(sde), ComponentPosterior(MIX, sde), k, scale=1.0)
    x, _ = scoresde.sample(sde, guided, (2000, 2), solver="ancestral", steps=300, eps=EPS, denoise=False,
                           generator=torch.Generator().manual_seed(0), dtype=torch.float64)  # fmt: skip
    _check_component_samples(x, sde, k)


def test_unguided_sampling_is_not_one_component(sde):
    """The check above can fail: without guidance about 1/8 of the samples fall in component 3."""
    x, _ = scoresde.sample(sde, MIX.score_fn(sde), (800, 2), solver="ancestral", steps=200, eps=EPS, denoise=False,
                           generator=torch.Generator().manual_seed(0), dtype=torch.float64)  # fmt: skip
    share = (MIX.responsibilities(None, x).argmax(1) == 3).double().mean()
    assert abs(float(share) - 1 / 8) < 5 * math.sqrt(1 / 8 * 7 / 8 / 800)


def test_cfg_at_zero_samples_the_component(sde):
    """Classifier-free guidance at w = 0 with the exact conditional and unconditional scores -> component k."""
    k = 6
    guided = classifier_free_guidance(ComponentScore(MIX, sde), k, 0.0)
    x, _ = scoresde.sample(sde, guided, (2000, 2), solver="ancestral", steps=300, eps=EPS, denoise=False,
                           generator=torch.Generator().manual_seed(1), dtype=torch.float64)  # fmt: skip
    _check_component_samples(x, sde, k)


def test_cfg_per_sample_labels(sde):
    """One batch, one requested component per sample: each sample lands in its own component."""
    y = torch.arange(400) % 8
    guided = classifier_free_guidance(ComponentScore(MIX, sde), y, 0.0)
    x, _ = scoresde.sample(sde, guided, (400, 2), solver="ancestral", steps=200, eps=EPS, denoise=False,
                           generator=torch.Generator().manual_seed(2), dtype=torch.float64)  # fmt: skip
    assert (MIX.responsibilities(None, x).argmax(1) == y).double().mean() >= 0.98


@pytest.mark.parametrize("w", [0.5, 3.0])
def test_cfg_probability_flow_matches_the_linear_ode(sde, w):
    """With Gaussian class and data laws the guided probability-flow ODE is linear, dx/dt = A(t) x + b(t) with
    A = f + g^2 a / 2, b = -g^2 a mean / 2 (the tilted Gaussian's precision a and mean, see above); its flow map
    x_eps = Phi x_T + c, integrated here independently with scipy, must equal the sampler's."""
    mu_c, var_c, var_u = np.array([1.0, -0.5]), 0.09, 1.0
    cond, uncond = Gaussian(mu_c.tolist(), std=math.sqrt(var_c)), Gaussian([0.0, 0.0], std=math.sqrt(var_u))
    score = lambda x, t, y: torch.where((y == 0)[:, None], cond.score(sde, x, t), uncond.score(sde, x, t))  # noqa: E731
    x_T = torch.randn(16, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x, _ = scoresde.sample(sde, classifier_free_guidance(score, 0, w, null_label=1), None, start=x_T, solver="ode",
                           eps=EPS, denoise=False, rtol=1e-9, atol=1e-9)  # fmt: skip

    def rhs(t, state):  # state = [Phi, c_1, c_2]
        tt = torch.tensor([t], dtype=torch.float64)
        f, g2, m, s2 = (float(v) for v in (sde.f(tt), sde.g2(tt), sde.mean_scale(tt), sde.std(tt) ** 2))
        v_c, v_u = m**2 * var_c + s2, m**2 * var_u + s2
        a = (1 + w) / v_c - w / v_u
        mean = m * (1 + w) * mu_c / v_c / a
        A = f + 0.5 * g2 * a
        return np.concatenate([[A * state[0]], A * state[1:] - 0.5 * g2 * a * mean])

    sol = solve_ivp(rhs, (sde.T, EPS), np.array([1.0, 0.0, 0.0]), rtol=1e-11, atol=1e-12, method="DOP853")
    phi, c = sol.y[0, -1], torch.from_numpy(sol.y[1:, -1])
    torch.testing.assert_close(x, phi * x_T + c, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------------------------- errors
def test_bad_arguments():
    sde = scoresde.VPSDE()
    clf, score = ComponentPosterior(MIX, sde), MIX.score_fn(sde)
    with pytest.raises(TypeError, match="y must be"):
        classifier_guidance(score, clf, torch.zeros(3))
    with pytest.raises(TypeError, match="scale"):
        classifier_guidance(score, clf, 1, scale="big")
    with pytest.raises(ValueError, match="classes"):
        classifier_guidance(score, clf, 9)(torch.zeros(2, 2), 0.5)
    with pytest.raises(ValueError, match="batch"):
        classifier_guidance(score, clf, torch.tensor([1, 2, 3]))(torch.zeros(2, 2), 0.5)
    with pytest.raises(ValueError, match="null_label"):
        classifier_free_guidance(lambda x, t, y: x, 1, 1.0)
    with pytest.raises(ValueError, match="null label"):
        classifier_free_guidance(ComponentScore(MIX, sde), 8, 1.0)
    with pytest.raises(ValueError, match="scale"):
        classifier_free_guidance(ComponentScore(MIX, sde), 1, -2.0)
    assert "scale=2.0" in repr(ClassifierGuidance(score, clf, 1, 2.0))
    assert "null_label=8" in repr(ClassifierFreeGuidance(ComponentScore(MIX, sde), 1, 2.0))


def test_component_score_null_label_is_the_mixture_score(sde):
    x, t = _random_xt(sde)
    out = ComponentScore(MIX, sde)(x, t, torch.full((x.shape[0],), 8))
    torch.testing.assert_close(out, MIX.score(sde, x, t))
