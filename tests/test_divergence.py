"""Divergence estimators against the trace of autograd's full Jacobian."""

import math

import pytest
import torch

from scoresde.likelihood.divergence import (
    DIVERGENCES,
    ExactDivergence,
    GaussianDivergence,
    RademacherDivergence,
    make_divergence,
)


def _field(x):
    """A nonlinear per-sample vector field with a dense Jacobian: tanh(x W) + x^2 (flattened event)."""
    flat = x.reshape(x.shape[0], -1)
    d = flat.shape[1]
    w = torch.linspace(-1, 1, d * d, dtype=x.dtype).reshape(d, d)
    return (torch.tanh(flat @ w) + flat**2).reshape(x.shape)


def _exact_trace(x):
    return torch.stack(
        [
            torch.trace(
                torch.autograd.functional.jacobian(lambda y: _field(y[None])[0].reshape(-1), xi).reshape(
                    xi.numel(), xi.numel()
                )
            )
            for xi in x
        ]
    )


@pytest.mark.parametrize("chunk", [1, 3, 256])
def test_exact_divergence_is_the_jacobian_trace(event_shape, chunk):
    x = torch.randn(4, *event_shape, dtype=torch.float64, generator=torch.Generator().manual_seed(0))
    xg = x.clone().requires_grad_(True)
    got = ExactDivergence(chunk=chunk)(_field(xg), xg)
    torch.testing.assert_close(got, _exact_trace(x))


@pytest.mark.parametrize("cls", [RademacherDivergence, GaussianDivergence])
def test_hutchinson_mean_is_the_trace(cls):
    """Averaging 20000 probes (same forward pass) lands within 4 standard errors of the trace."""
    x = torch.randn(3, 5, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    xg = x.clone().requires_grad_(True)
    v = _field(xg)
    est = cls(n_probes=1)
    samples = []
    gen = torch.Generator().manual_seed(2)
    for _ in range(20):
        many = cls(n_probes=1000)
        many.draw(x, gen)
        per_probe = torch.stack([sum_uJu(v, xg, u) for u in many.probes])  # (1000, B)
        samples.append(per_probe)
    per_probe = torch.cat(samples)
    mean, se = per_probe.mean(0), per_probe.std(0) / math.sqrt(per_probe.shape[0])
    assert bool(((mean - _exact_trace(x)).abs() < 4 * se).all())
    # one probe takes a plain VJP, several a batched one: both average the same quantities
    est.draw(x, gen)
    torch.testing.assert_close(est(v, xg), sum_uJu(v, xg, est.probes[0]))
    three = cls(n_probes=3)
    three.draw(x, gen)
    torch.testing.assert_close(three(v, xg), torch.stack([sum_uJu(v, xg, u) for u in three.probes]).mean(0))


def sum_uJu(v, x, u):
    (uJ,) = torch.autograd.grad(v, x, u, retain_graph=True)
    return (uJ * u).reshape(x.shape[0], -1).sum(1)


def test_probes_have_identity_second_moment():
    x = torch.zeros(2, 3)
    for cls in (RademacherDivergence, GaussianDivergence):
        est = cls(n_probes=20000)
        est.draw(x, torch.Generator().manual_seed(3))
        u = est.probes.reshape(20000, -1)
        torch.testing.assert_close(u.T @ u / 20000, torch.eye(6), atol=0.05, rtol=0)
    rad = RademacherDivergence(4)
    rad.draw(x, torch.Generator())
    assert set(rad.probes.unique().tolist()) <= {-1.0, 1.0}


def test_make_divergence_and_errors():
    assert set(DIVERGENCES) == {"exact", "rademacher", "gaussian"}
    assert isinstance(make_divergence("gaussian", 3), GaussianDivergence)
    assert make_divergence("rademacher", 2).n_probes == 2
    with pytest.raises(ValueError, match="divergence must be one of"):
        make_divergence("trace")
    with pytest.raises(ValueError, match="n_probes"):
        make_divergence("exact", 4)
    with pytest.raises(ValueError, match="n_probes"):
        RademacherDivergence(0)
    with pytest.raises(ValueError, match="chunk"):
        ExactDivergence(chunk=0)
    x = torch.zeros(2, 3, requires_grad=True)
    with pytest.raises(RuntimeError, match="draw"):
        RademacherDivergence()(x * 2, x)
