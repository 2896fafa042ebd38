"""data=folder: images generated on the fly (PNG, JPEG, WebP, grey and RGB, non-square, one corrupt file)."""

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from scoresde.data import RandomHorizontalFlip, folder_classes, from_levels, image_folder
from scoresde.data import folder as folder_module

PIL = pytest.importorskip("PIL.Image")
CONF = Path(__file__).resolve().parents[2] / "conf"


def _png(path: Path, array: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    PIL.fromarray(array).save(path)


def _make_folder(root: Path, n_per_class: int = 4, size: int = 8) -> dict[str, np.ndarray]:
    """Two classes of random RGB PNGs of side ``size``; returns the arrays by relative path."""
    rng = np.random.default_rng(0)
    arrays = {}
    for cls in ("cats", "dogs"):
        for i in range(n_per_class):
            a = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
            _png(root / cls / f"{i}.png", a)
            arrays[f"{cls}/{i}.png"] = a
    return arrays


def test_png_levels_are_exact_and_labels_come_from_sub_folders(tmp_path):
    arrays = _make_folder(tmp_path / "imgs")
    ds = image_folder(tmp_path / "imgs", resolution=8, n_test=2, cache_dir=tmp_path / "cache")
    assert ds.event_shape == (3, 8, 8) and ds.levels == 256 and ds.num_classes == 2
    assert ds.train.shape[0] + ds.test.shape[0] == 8 and ds.test.shape[0] == 2
    assert folder_classes(tmp_path / "imgs") == ["cats", "dogs"]
    # every stored image is one of the files, exactly (PNG is lossless and no resize happens at the same size)
    expected = {k: from_levels(torch.from_numpy(a).permute(2, 0, 1), 256) for k, a in arrays.items()}
    for x, y in zip(torch.cat([ds.train, ds.test]), torch.cat([ds.train_labels, ds.test_labels]), strict=True):
        match = [k for k, e in expected.items() if torch.equal(e, x)]
        assert len(match) == 1 and match[0].startswith(("cats", "dogs")[int(y)])
    assert ds.name == "folder_imgs_8" and ds.train_transform is None


def test_corrupt_file_is_named_and_refused_or_skipped_with_a_warning(tmp_path):
    _make_folder(tmp_path / "imgs")
    (tmp_path / "imgs" / "dogs" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really a png")
    (tmp_path / "imgs" / "notes.txt").write_text("ignored: not an image suffix")
    with pytest.raises(ValueError, match=r"1 unreadable image file\(s\)[\s\S]*dogs/broken\.png"):
        image_folder(tmp_path / "imgs", resolution=8, cache_dir=tmp_path / "cache")
    for _ in range(2):  # the second call reads the cache and must warn again
        with pytest.warns(UserWarning, match=r"skipped 1 unreadable[\s\S]*dogs/broken\.png"):
            ds = image_folder(tmp_path / "imgs", resolution=8, on_error="skip", cache_dir=tmp_path / "cache")
        assert ds.train.shape[0] + ds.test.shape[0] == 8


def test_centre_crop_resize_grey_and_formats(tmp_path):
    # a 12 x 24 (H x W) image: the centre 12 x 12 square is grey level 200, the sides 10
    wide = np.full((12, 24), 10, np.uint8)
    wide[:, 6:18] = 200
    _png(tmp_path / "g" / "wide.png", wide)
    tall = np.full((24, 12), 10, np.uint8)
    tall[6:18, :] = 60
    _png(tmp_path / "g" / "tall.png", tall)
    ds = image_folder(tmp_path / "g", resolution=4, n_test=1, cache=False)
    assert ds.event_shape == (1, 4, 4) and ds.num_classes is None and ds.train_labels is None
    values = sorted(float(x.unique()) for x in torch.cat([ds.train, ds.test]))  # each image is one flat level
    assert values == pytest.approx([float(from_levels(torch.tensor(k), 256)) for k in (60, 200)])
    # JPEG and WebP decode (lossy: compare loosely); channels=3 forces RGB
    flat = np.full((16, 16, 3), (250, 20, 20), np.uint8)
    PIL.fromarray(flat).save(tmp_path / "g" / "red.jpg", quality=95)
    PIL.fromarray(flat).save(tmp_path / "g" / "red.webp", quality=95)
    ds = image_folder(tmp_path / "g", resolution=4, n_test=1, channels=3, cache=False)
    assert ds.event_shape == (3, 4, 4) and ds.train.shape[0] + ds.test.shape[0] == 4
    reds = [x for x in torch.cat([ds.train, ds.test]) if float(x[0].mean()) > 0.8]
    assert len(reds) == 2 and all(float(x[1:].mean()) < -0.7 for x in reds)


def test_cache_is_reused_and_invalidated_when_the_folder_changes(tmp_path, monkeypatch):
    _make_folder(tmp_path / "imgs", n_per_class=2)
    first = image_folder(tmp_path / "imgs", resolution=4, n_test=1, cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache" / "folders").glob("*.npz"))) == 1
    decode = folder_module.decode_folder
    monkeypatch.setattr(folder_module, "decode_folder", lambda *a: pytest.fail("decoded again"))
    again = image_folder(tmp_path / "imgs", resolution=4, n_test=1, cache_dir=tmp_path / "cache")
    assert torch.equal(first.train, again.train) and torch.equal(first.test_labels, again.test_labels)
    monkeypatch.setattr(folder_module, "decode_folder", decode)
    _png(tmp_path / "imgs" / "cats" / "0.png", np.zeros((8, 8, 3), np.uint8))  # new content, size and mtime
    changed = image_folder(tmp_path / "imgs", resolution=4, n_test=1, cache_dir=tmp_path / "cache")
    assert len(list((tmp_path / "cache" / "folders").glob("*.npz"))) == 2
    assert not torch.equal(torch.cat([first.train, first.test]), torch.cat([changed.train, changed.test]))


def test_train_test_sub_folders_and_flips(tmp_path):
    _make_folder(tmp_path / "d" / "train", n_per_class=3)
    _make_folder(tmp_path / "d" / "test", n_per_class=1)
    ds = image_folder(tmp_path / "d", resolution=8, random_flip=True, cache=False)
    assert ds.train.shape[0] == 6 and ds.test.shape[0] == 2 and ds.num_classes == 2
    assert ds.test_labels.tolist() == [0, 1] and isinstance(ds.train_transform, RandomHorizontalFlip)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"resolution": 0}, "resolution"),
        ({"channels": 2}, "channels"),
        ({"on_error": "ignore"}, "on_error"),
        ({"n_test": 1.5}, "n_test"),
    ],
)
def test_bad_arguments(tmp_path, kwargs, match):
    _make_folder(tmp_path, n_per_class=1)
    with pytest.raises(ValueError, match=match):
        image_folder(tmp_path, **({"resolution": 8} | kwargs))


def test_missing_or_empty_root(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing"):
        image_folder(tmp_path / "missing")
    with pytest.raises(ValueError, match="no image files"):
        image_folder(tmp_path)


def test_config_takes_root_and_resolution(tmp_path):
    _make_folder(tmp_path / "imgs", size=12)
    with initialize_config_dir(str(CONF), version_base="1.3"):
        cfg = compose("config", overrides=["data=folder", f"data.root={tmp_path / 'imgs'}", "data.resolution=6",
                                           "data.dataset.cache=false"])  # fmt: skip
    ds = instantiate(cfg.data.dataset)
    assert ds.event_shape == (3, 6, 6) and ds.num_classes == 2 and cfg.data.kind == "image"


def test_labelled_folder_trains_the_fid_classifier(tmp_path):
    from scoresde.metrics.classifier import train_classifier
    from scoresde.metrics.features import ClassifierFeatures

    _make_folder(tmp_path / "imgs", n_per_class=6)
    ds = image_folder(tmp_path / "imgs", resolution=8, n_test=4, cache=False)
    before = torch.get_rng_state()
    train_classifier(ds, epochs=1, batch_size=8, width=4, feature_dim=8, save_root=tmp_path / "cache", log=lambda s: 0)
    assert torch.equal(torch.get_rng_state(), before)  # seeded by its own generator; the global RNG is untouched
    features = ClassifierFeatures.from_dataset(ds, cache_root=tmp_path / "cache").extract(ds.test)
    assert features.features.shape == (4, 8) and features.logits.shape == (4, 2)


def test_unlabelled_folder_says_fid_needs_another_feature_network(tmp_path):
    from scoresde.metrics.classifier import train_classifier

    for i in range(4):
        _png(tmp_path / "flat" / f"{i}.png", np.full((8, 8, 3), 40 * i, np.uint8))
    ds = image_folder(tmp_path / "flat", resolution=8, n_test=1, cache=False)
    with pytest.raises(ValueError, match="one sub-folder per class.*extractor=inception"):
        train_classifier(ds, epochs=1, save=False)
