"""The paired verdict of the training job's evaluation: model - baseline on the same points, estimator noise in."""

import math

import pytest
import torch

from scoresde import VPSDE
from scoresde.oracle import Gaussian
from scoresde.training.evaluation import evaluate_likelihood, paired_difference


def test_paired_difference_closed_form():
    model = torch.tensor([[1.0, 2.0, 3.0, 4.0], [1.2, 2.2, 2.8, 4.2]], dtype=torch.float64)
    base = torch.tensor([1.5, 2.5, 3.5, 4.5], dtype=torch.float64)
    p = paired_difference(model, base, "b")
    d = model.mean(0) - base
    assert p.mean == pytest.approx(float(d.mean()))
    assert p.stderr == pytest.approx(float(d.std() / 2))
    assert p.estimator_stderr == pytest.approx(float((model.var(0).mean() / 2).sqrt() / 2))
    assert p.beats == (p.mean < -3 * p.stderr)


def test_pairing_removes_the_spread_between_examples():
    # a model 0.01 better than the baseline on every example, examples spread by 1: unpaired s.e. ~ 0.1, paired 0
    base = torch.randn(100, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    noise = 1e-3 * torch.randn(2, 100, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    p = paired_difference(base - 0.01 + noise, base, "b")
    assert p.beats and p.stderr < 2e-3 and p.z < -3


def test_evaluation_of_the_exact_score_beats_the_gaussian_baseline_for_a_non_gaussian_truth():
    sde = VPSDE()
    truth = Gaussian(torch.zeros(2), std=torch.tensor([0.3, 1.0]))
    train = truth.sample(2000, generator=torch.Generator().manual_seed(0))
    test = truth.sample(64, generator=torch.Generator().manual_seed(1)).double()
    report = evaluate_likelihood(sde, truth.score_fn(sde), train, test, levels=None, draws=2, divergence="gaussian",
                                 rtol=1e-4, atol=1e-4)  # fmt: skip
    p = report.paired["gaussian (full covariance)"]
    assert report.draws == 2 and report.reference == "gaussian (full covariance)"
    assert (
        math.isfinite(p.estimator_stderr) and p.estimator_stderr > 0
    )  # Gaussian probes differ between draws (Rademacher is exact for a diagonal Jacobian)
    assert p.stderr >= p.estimator_stderr * 0.5
    assert "paired over 64 examples x 2 draws" in report.table()
    assert abs(p.mean) < 4 * p.stderr + 0.02  # the exact score ties a fitted Gaussian on Gaussian data


def test_bad_draws_is_refused():
    sde = VPSDE()
    x = torch.zeros(2, 2)
    with pytest.raises(ValueError, match="draws"):
        evaluate_likelihood(sde, lambda x, t: -x, x, x, levels=None, draws=0)
