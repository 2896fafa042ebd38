"""Domain classifiers, feature extractors, the reference-statistics cache and the sample evaluator."""

import math

import numpy as np
import pytest
import torch

from scoresde.data import digits, eight_gaussians
from scoresde.metrics import frechet_distance_from_stats, gaussian_stats
from scoresde.metrics.classifier import SmallCNN, load_classifier, train_classifier
from scoresde.metrics.features import INCEPTION_ENV, INCEPTION_WEIGHTS_FILE, InceptionFeatures, extractor_for
from scoresde.metrics.quality import SampleEvaluator
from scoresde.metrics.reference import reference_set


@pytest.fixture(scope="module")
def digits_data():
    return digits()


@pytest.fixture(scope="module")
def trained_cache(tmp_path_factory, digits_data):
    """A cache root holding a digits classifier trained on the default short schedule (~3 s)."""
    root = tmp_path_factory.mktemp("cache")
    _, info = train_classifier(digits_data, save_root=root, log=lambda s: None)
    return root, info


def test_digits_classifier_reaches_its_accuracy(trained_cache):
    _, info = trained_cache
    assert info.test_accuracy >= 0.97


def test_saved_classifier_is_what_was_trained(trained_cache, digits_data):
    root, info = trained_cache
    model, loaded = load_classifier("digits", root)
    assert loaded == info
    x = digits_data.test[:50]
    acc = float((model(x).argmax(1) == digits_data.test_labels[:50]).float().mean())
    assert acc >= 0.9
    ext = extractor_for(digits_data, cache_root=root)
    out = ext.extract(x)
    assert out.features.shape == (50, 128) and out.logits.shape == (50, 10)
    assert ext.key == f"classifier-{info.fingerprint}"


def test_missing_classifier_error_names_the_training_command(tmp_path, digits_data):
    with pytest.raises(FileNotFoundError, match=r"python -m scoresde\.metrics\.train_classifier data=digits"):
        extractor_for(digits_data, "classifier", cache_root=tmp_path)


def test_smallcnn_adapts_to_image_size():
    for shape, blocks in (((1, 8, 8), 1), ((1, 28, 28), 2), ((3, 32, 32), 3)):
        net = SmallCNN(shape)
        assert sum(isinstance(m, torch.nn.MaxPool2d) for m in net.modules()) == blocks
        assert net(torch.zeros(2, *shape)).shape == (2, 10)
    with pytest.raises(ValueError, match="event_shape"):
        SmallCNN((64,))


def test_reference_statistics_are_cached_by_dataset_split_and_extractor(trained_cache, digits_data):
    root, _ = trained_cache
    ext = extractor_for(digits_data, cache_root=root)
    first = reference_set(digits_data, "test", ext, cache_root=root)
    assert first.path.is_file() and "digits-test-n297" in first.path.name and ext.key in first.path.name
    again = reference_set(digits_data, "test", ext, cache_root=root)  # read back from the .npz
    np.testing.assert_array_equal(again.stats.sigma, first.stats.sigma)
    np.testing.assert_array_equal(again.features, first.features)
    fresh = reference_set(digits_data, "test", ext, cache=False)
    np.testing.assert_allclose(fresh.stats.mu, first.stats.mu, rtol=1e-6)
    assert reference_set(digits_data, "train", ext, cache_root=root).path != first.path


def test_evaluator_floor_and_ordering(trained_cache, digits_data):
    root, _ = trained_cache
    ev = SampleEvaluator(digits_data, extractor_for(digits_data, cache_root=root), cache_root=root, kid_subsets=20)
    floor = ev.floor()
    assert floor == ev.evaluate(digits_data.test)  # the floor is the held-out split scored like samples
    noisy = ev.evaluate((digits_data.test + 0.4 * torch.randn_like(digits_data.test)).clamp(-1, 1))
    noise = ev.evaluate(torch.rand(297, 1, 8, 8) * 2 - 1)
    assert floor.fid < noisy.fid < noise.fid
    assert floor.kid < noisy.kid < noise.kid
    assert floor.score > noisy.score > noise.score and floor.score <= 10
    assert ev.floor(100).n == 100
    with pytest.raises(ValueError, match="samples must have shape"):
        ev.evaluate(torch.zeros(5, 64))


def test_evaluator_on_points_reports_data_space_metrics(tmp_path):
    ds = eight_gaussians()
    ev = SampleEvaluator(ds, extractor_for(ds), cache_root=tmp_path, kid_subsets=10)
    floor = ev.floor(500)
    assert floor.score is None and floor.mmd is not None and floor.sliced_w2 is not None
    # the exact NLL of true samples is about the entropy of the mixture, below the NLL of shrunk samples
    true = ds.oracle.sample(500, generator=torch.Generator().manual_seed(0))
    assert ev.evaluate(true).nll == pytest.approx(floor.nll, abs=0.15)
    assert ev.evaluate(0.8 * true).nll > floor.nll + 0.5


def test_inception_error_says_which_file_and_where(tmp_path, monkeypatch):
    monkeypatch.setenv(INCEPTION_ENV, str(tmp_path / "nowhere.pth"))
    with pytest.raises(FileNotFoundError, match=INCEPTION_WEIGHTS_FILE) as err:
        InceptionFeatures()
    assert INCEPTION_ENV in str(err.value) and str(tmp_path / "nowhere.pth") in str(err.value)
    monkeypatch.delenv(INCEPTION_ENV)
    with pytest.raises(FileNotFoundError, match=str(tmp_path / "c" / INCEPTION_WEIGHTS_FILE)):
        InceptionFeatures(cache_root=tmp_path / "c")


def test_inception_runs_from_a_local_weights_file(tmp_path, monkeypatch):
    try:
        import torch_fidelity.feature_extractor_inceptionv3 as fidelity
    except Exception as err:  # the optional extra is absent, or its torchvision does not load with this torch
        pytest.skip(f"torch-fidelity is not usable here: {type(err).__name__}")

    def no_download(*args, **kwargs):
        raise AssertionError("tried to download")

    # random weights in the right format, made without any download
    monkeypatch.setattr(fidelity, "load_state_dict_from_url", lambda *a, **k: None)
    with monkeypatch.context() as m:
        m.setattr(fidelity.FeatureExtractorInceptionV3, "load_state_dict", lambda self, sd: None)
        net = fidelity.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    path = tmp_path / INCEPTION_WEIGHTS_FILE
    torch.save(net.state_dict(), path)
    monkeypatch.setattr(fidelity, "load_state_dict_from_url", no_download)
    ext = InceptionFeatures(path)
    out = ext.extract(torch.rand(3, 1, 8, 8) * 2 - 1)
    assert out.features.shape == (3, 2048) and out.logits.shape == (3, 1008)
    assert math.isfinite(float(out.features.sum()))


def test_matched_fid_is_the_fid_at_the_floor_size():
    # N = 1200 samples, 300 held-out points: fid_matched estimates the FID of 300 fresh samples, which is
    # several times the FID at 1200 (the b / n bias), and is what the floor must be compared with.
    from scoresde.data import ArrayDataset

    gen = torch.Generator().manual_seed(0)
    scale = torch.linspace(0.5, 2.0, 16)
    draw = lambda n: torch.randn(n, 16, generator=gen) * scale  # noqa: E731
    ds = ArrayDataset(name="gauss16", train=draw(3000), test=draw(300))
    ev = SampleEvaluator(ds, extractor_for(ds), cache=False, kid_subsets=2, matched_repeats=20)
    big = ev.evaluate(draw(1200), matched_n=300)
    ref = ev.reference.stats
    fresh_300 = np.mean([frechet_distance_from_stats(gaussian_stats(draw(300)), ref) for _ in range(20)])
    assert big.fid_matched == pytest.approx(fresh_300, rel=0.15)
    assert big.fid_matched > 2 * big.fid
    assert ev.evaluate(draw(300), matched_n=300).fid_matched is None
