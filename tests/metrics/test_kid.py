"""KID and the Inception-Score analogue against closed forms."""

import math

import numpy as np
import pytest

from scoresde.metrics import PolynomialKernel, classifier_score, kernel_inception_distance, mmd2_unbiased


def _poly_mmd2_1d(m1, s1, m2, s2, c=1.0):
    """Population MMD^2 for k(x, y) = (x y + c)^3 between N(m1, s1^2) and N(m2, s2^2), from the moments."""
    moments = lambda m, s: (m, m**2 + s**2, m**3 + 3 * m * s**2)  # noqa: E731
    a, b = moments(m1, s1), moments(m2, s2)
    return (a[2] - b[2]) ** 2 + 3 * c * (a[1] - b[1]) ** 2 + 3 * c**2 * (a[0] - b[0]) ** 2


def test_unbiased_estimator_matches_the_population_mmd():
    # Averaged over many independent small sets the unbiased estimator hits the closed form (a biased one
    # would be off by O(1/m) = 5% of the kernel scale here).
    rng = np.random.default_rng(0)
    kernel = PolynomialKernel(degree=3, gamma=1.0, coef0=1.0)
    m, reps = 20, 4000
    est = np.empty(reps)
    for r in range(reps):
        x = rng.normal(0.3, 0.8, (m, 1))
        y = rng.normal(0.0, 1.0, (m, 1))
        est[r] = mmd2_unbiased(kernel(x, x), kernel(y, y), kernel(x, y))
    expected = _poly_mmd2_1d(0.3, 0.8, 0.0, 1.0)
    se = est.std() / math.sqrt(reps)
    assert abs(est.mean() - expected) < 4 * se
    # ... and is zero in expectation for one distribution
    zero = np.empty(reps)
    for r in range(reps):
        x, y = rng.normal(0, 1, (m, 1)), rng.normal(0, 1, (m, 1))
        zero[r] = mmd2_unbiased(kernel(x, x), kernel(y, y), kernel(x, y))
    assert abs(zero.mean()) < 4 * zero.std() / math.sqrt(reps)


def test_linear_kernel_gives_the_squared_mean_difference():
    # degree 1, coef0 0: MMD^2_u = |mean x - mean y|^2 minus the within-set diagonal terms, exactly
    rng = np.random.default_rng(1)
    x, y = rng.standard_normal((50, 3)), rng.standard_normal((60, 3)) + 1.0
    k = PolynomialKernel(degree=1, gamma=1.0, coef0=0.0)
    got = mmd2_unbiased(k(x, x), k(y, y), k(x, y))
    u_xx = ((x.sum(0) ** 2).sum() - (x**2).sum()) / (50 * 49)
    u_yy = ((y.sum(0) ** 2).sum() - (y**2).sum()) / (60 * 59)
    assert got == pytest.approx(u_xx + u_yy - 2 * x.mean(0) @ y.mean(0), rel=1e-12)


def test_kid_on_subsets():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((2000, 8))
    same = kernel_inception_distance(x[:1000], x[1000:], num_subsets=50, subset_size=200)
    assert abs(same.mean) < 3 * same.std / math.sqrt(50) + 1e-3
    shifted = kernel_inception_distance(x[:1000], x[1000:] + 0.5, num_subsets=50, subset_size=200)
    assert shifted.mean > 10 * same.std
    assert shifted.subset_size == 200 and shifted.num_subsets == 50
    # capped subset size and determinism given the seed
    small = kernel_inception_distance(x[:30], x[30:70], num_subsets=3, subset_size=1000, seed=5)
    assert small.subset_size == 30
    assert small == kernel_inception_distance(x[:30], x[30:70], num_subsets=3, subset_size=1000, seed=5)
    with pytest.raises(ValueError, match="feature dimension"):
        kernel_inception_distance(x[:, :2], x[:, :3])


def test_classifier_score_known_cases():
    k = 10
    confident = np.full((1000, k), -30.0)
    confident[np.arange(1000), np.arange(1000) % k] = 30.0
    assert classifier_score(confident, splits=10).mean == pytest.approx(k, rel=1e-6)
    assert classifier_score(np.zeros((100, k)), splits=2).mean == pytest.approx(1.0)
    # two classes, p(y|x) = (p, 1-p) or (1-p, p) in equal numbers: IS = exp(log 2 - H(p))
    p = 0.8
    logits = np.log(np.array([[p, 1 - p], [1 - p, p]] * 50))
    h = -(p * math.log(p) + (1 - p) * math.log(1 - p))
    res = classifier_score(logits, splits=1)
    assert res.mean == pytest.approx(math.exp(math.log(2) - h))
    assert res.std == 0.0 and res.num_classes == 2
