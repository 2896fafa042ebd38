"""The noise-conditional classifier: Bayes-optimal accuracy on mixture "images" at every noise level, save/load."""

import json

import pytest
import torch

import scoresde
from scoresde.conditioning import ComponentPosterior
from scoresde.conditioning.noisy_classifier import (
    NoisyClassifier,
    NoisyClassifierReport,
    accuracy_by_noise_level,
    load_noisy_classifier,
    save_noisy_classifier,
    train_noisy_classifier,
)
from scoresde.data import ArrayDataset
from scoresde.oracle import Gaussian, GaussianMixture

SHAPE = (1, 2, 2)
# two classes of 2x2 "images" whose pixels are N(+-0.4, 0.5^2): overlapping, so the Bayes accuracy is below 1 and
# falls with the noise level
MIX = GaussianMixture([Gaussian(torch.full(SHAPE, m), std=0.5) for m in (-0.4, 0.4)])
TIMES = (0.0, 0.3, 0.5, 0.7)


def _dataset(n_train=2048, n_test=2000):
    gen = torch.Generator().manual_seed(0)
    x, y = MIX.sample_with_labels(n_train + n_test, generator=gen)
    return ArrayDataset("two_classes", x[:n_train], x[n_train:], y[:n_train], y[n_train:], num_classes=2)


def _bayes_accuracy(sde, data, times, seed=0):
    """Accuracy of the exact posterior p_t(k | x_t) on the same noise draws as accuracy_by_noise_level."""
    gen, exact, out = torch.Generator().manual_seed(seed), ComponentPosterior(MIX, sde), []
    for t in times:
        z = torch.randn(data.test.shape, generator=gen)
        x_t = sde.perturb(data.test, t, z) if t > 0 else data.test
        out.append(float((exact(x_t, max(t, 1e-6)).argmax(1) == data.test_labels).double().mean()))
    return out


@pytest.mark.parametrize("sde_name", [pytest.param("vp", marks=pytest.mark.slow), "ve"])
def test_trained_classifier_is_nearly_bayes_optimal_at_every_noise_level(sde_name):
    sde = scoresde.VPSDE() if sde_name == "vp" else scoresde.VESDE(sigma_min=0.01, sigma_max=5.0)
    data = _dataset()
    torch.manual_seed(0)
    clf = NoisyClassifier(sde, SHAPE, 2, channels=8, ch_mult=(1,), norm_groups=4)
    report = train_noisy_classifier(clf, data, steps=150, batch_size=128, lr=1e-2, shift=0, eval_times=TIMES,
                                    log=lambda s: 0)  # fmt: skip
    bayes = _bayes_accuracy(sde, data, TIMES)
    assert report.times == list(TIMES) and len(report.accuracy) == len(TIMES)
    for acc, best in zip(report.accuracy, bayes, strict=True):
        assert best - 0.04 < acc < best + 0.03, (report.accuracy, bayes)
    assert bayes[0] > bayes[-1] + 0.05  # the noise level matters: the table is not flat
    assert report.sigmas[0] == 0.0 and report.sigmas[-1] > report.sigmas[1]


def test_save_and_load_round_trip(tmp_path):
    sde = scoresde.SubVPSDE()
    torch.manual_seed(0)
    clf = NoisyClassifier(sde, SHAPE, 2, channels=8, ch_mult=(1, 2), norm_groups=4)  # one 2x2 pooling
    for p in clf.parameters():
        torch.nn.init.normal_(p, std=0.2)
    data = _dataset(256, 64)
    acc, nll = accuracy_by_noise_level(clf, data.test, data.test_labels, (0.0, 0.5))
    report = NoisyClassifierReport("two_classes", 0, 0.0, [0.0, 0.5], [0.0, float(sde.sigma(0.5))], acc, nll)
    save_noisy_classifier(clf, report, tmp_path, {"_target_": "scoresde.SubVPSDE"})
    loaded = load_noisy_classifier(tmp_path / "noisy_classifier.pt")
    x, t = data.test[:8], torch.rand(8)
    torch.testing.assert_close(loaded(x, t), clf(x, t))
    assert isinstance(loaded.sde, scoresde.SubVPSDE) and not any(p.requires_grad for p in loaded.parameters())
    assert json.loads((tmp_path / "noisy_classifier.json").read_text())["report"]["accuracy"] == acc
    assert "| 0.50 |" in report.table()
    with pytest.raises(FileNotFoundError, match="train_noisy_classifier"):
        load_noisy_classifier(tmp_path / "missing")


def test_guidance_runs_through_the_network_under_no_grad():
    """The gradient reaches x through the network inside the samplers' no_grad, in float64 around float32 weights."""
    sde = scoresde.VPSDE()
    clf = NoisyClassifier(sde, SHAPE, 2, channels=8, ch_mult=(1,), norm_groups=4).requires_grad_(False)
    guided = scoresde.classifier_guidance(lambda x, t: torch.zeros_like(x), clf, 1, scale=1.0)
    x = torch.randn(3, *SHAPE, dtype=torch.float64)
    with torch.no_grad():
        g = guided(x, torch.full((3,), 0.4, dtype=torch.float64))
    assert g.dtype == torch.float64 and g.abs().sum() > 0


def test_bad_arguments():
    with pytest.raises(TypeError, match="sde"):
        NoisyClassifier("vp", SHAPE, 2)
    with pytest.raises(ValueError, match="event_shape"):
        NoisyClassifier(scoresde.VPSDE(), (16,), 2)
    with pytest.raises(ValueError, match="num_classes"):
        NoisyClassifier(scoresde.VPSDE(), SHAPE, 1)
