"""CIFAR-10 pickle batches on tiny synthetic files: layout, levels, flips, and the error messages."""

import os
import pickle

import numpy as np
import pytest
import torch

from scoresde.data import RandomHorizontalFlip, to_levels
from scoresde.data.cifar10 import TEST_BATCHES, TRAIN_BATCHES, cifar10

PER_BATCH = 2


def _write(root, protocol=2):
    rng = np.random.default_rng(0)
    out = {}
    for i, name in enumerate(TRAIN_BATCHES + TEST_BATCHES):
        data = rng.integers(0, 256, size=(PER_BATCH, 3072), dtype=np.uint8)
        labels = [(i + j) % 10 for j in range(PER_BATCH)]
        with open(root / name, "wb") as f:
            pickle.dump({b"batch_label": name.encode(), b"data": data, b"labels": labels}, f, protocol=protocol)
        out[name] = (data, labels)
    return out


@pytest.mark.parametrize("protocol", [2, 5])
def test_reads_channels_rows_and_labels(tmp_path, protocol):
    raw = _write(tmp_path, protocol)
    ds = cifar10(root=tmp_path)
    assert ds.name == "cifar10" and ds.levels == 256 and ds.num_classes == 10 and ds.event_shape == (3, 32, 32)
    assert ds.train.shape == (5 * PER_BATCH, 3, 32, 32) and ds.test.shape == (PER_BATCH, 3, 32, 32)
    data, labels = raw["data_batch_2"]
    img = to_levels(ds.train[PER_BATCH], 256)  # first image of the second batch
    # row-major layout: 1024 red values, then green, then blue, each 32 rows of 32
    assert int(img[0, 0, 0]) == data[0, 0] and int(img[0, 0, 1]) == data[0, 1] and int(img[0, 1, 0]) == data[0, 32]
    assert int(img[1, 0, 0]) == data[0, 1024] and int(img[2, 31, 31]) == data[0, 3071]
    assert ds.train_labels[PER_BATCH : 2 * PER_BATCH].tolist() == labels
    assert ds.test_labels.tolist() == raw["test_batch"][1]
    assert isinstance(ds.train_transform, RandomHorizontalFlip)


def test_subdirectory_subsets_and_no_flip(tmp_path):
    sub = tmp_path / "cifar-10-batches-py"
    sub.mkdir()
    _write(sub)
    ds = cifar10(root=tmp_path, random_flip=False, n_train=3, n_test=1)
    assert ds.train.shape[0] == 3 and ds.test.shape[0] == 1 and ds.train_transform is None


def test_missing_directory_and_batch(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        cifar10(root=tmp_path / "none")
    assert str(tmp_path / "none") in str(err.value) and "cifar-10-python.tar.gz" in str(err.value)
    _write(tmp_path)
    (tmp_path / "data_batch_4").unlink()
    with pytest.raises(FileNotFoundError, match="data_batch_4"):
        cifar10(root=tmp_path)


def test_corrupt_and_malicious_pickles(tmp_path):
    _write(tmp_path)
    path = tmp_path / "test_batch"
    good = path.read_bytes()
    path.write_bytes(good[: len(good) // 2])
    with pytest.raises(ValueError, match="corrupt or truncated"):
        cifar10(root=tmp_path)
    path.write_bytes(b"not a pickle at all")
    with pytest.raises(ValueError, match="not a readable CIFAR-10 pickle"):
        cifar10(root=tmp_path)

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo should-not-run",))

    path.write_bytes(pickle.dumps({b"data": Evil()}, protocol=2))
    with pytest.raises(ValueError, match="refusing to load"):
        cifar10(root=tmp_path)
    path.write_bytes(pickle.dumps({b"data": np.zeros((2, 100), dtype=np.uint8), b"labels": [0, 1]}))
    with pytest.raises(ValueError, match=r"shape \(N, 3072\)"):
        cifar10(root=tmp_path)
    path.write_bytes(pickle.dumps({b"data": np.zeros((2, 3072), dtype=np.uint8), b"labels": [0, 10]}))
    with pytest.raises(ValueError, match="class indices in 0..9"):
        cifar10(root=tmp_path)


def test_flip_applies_per_batch():
    x = torch.arange(4 * 3 * 32 * 32, dtype=torch.float32).reshape(4, 3, 32, 32)
    out = RandomHorizontalFlip(p=1.0)(x)
    assert torch.equal(out[..., 0], x[..., 31])
