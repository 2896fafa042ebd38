"""IDX reader (MNIST / Fashion-MNIST) on tiny synthetic files: values, levels, .gz, and every error message."""

import gzip
import struct

import numpy as np
import pytest
import torch

from scoresde.data import to_levels
from scoresde.data.idx import fashion_mnist, mnist, read_idx

N_TRAIN, N_TEST = 5, 3


def _idx_bytes(array: np.ndarray) -> bytes:
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def _write_split(root, prefix, n, seed, gz, sep="-"):
    rng = np.random.default_rng(seed)
    images = rng.integers(0, 256, size=(n, 28, 28), dtype=np.uint8)
    images[0, 0, 0], images[0, 0, 1] = 0, 255
    labels = rng.integers(0, 10, size=n, dtype=np.uint8)
    for kind, arr, ndim in (("images", images, 3), ("labels", labels, 1)):
        data = _idx_bytes(arr)
        name = f"{prefix}-{kind}{sep}idx{ndim}-ubyte" + (".gz" if gz else "")
        (root / name).write_bytes(gzip.compress(data) if gz else data)
    return images, labels


def _write_dataset(root, gz=True, sep="-"):
    train = _write_split(root, "train", N_TRAIN, 0, gz, sep)
    test = _write_split(root, "t10k", N_TEST, 1, gz, sep)
    return train, test


@pytest.mark.parametrize("gz, sep", [(True, "-"), (False, "-"), (False, ".")])
def test_reads_values_labels_and_levels(tmp_path, gz, sep):
    (train_x, train_y), (test_x, test_y) = _write_dataset(tmp_path, gz=gz, sep=sep)
    ds = fashion_mnist(root=tmp_path)
    assert ds.name == "fashion_mnist" and ds.levels == 256 and ds.num_classes == 10
    assert ds.train.shape == (N_TRAIN, 1, 28, 28) and ds.test.shape == (N_TEST, 1, 28, 28)
    assert ds.event_shape == (1, 28, 28) and ds.train.dtype == torch.float32
    assert float(ds.train[0, 0, 0, 0]) == -1.0 and float(ds.train[0, 0, 0, 1]) == 1.0
    # model value -> level round-trips to the raw bytes exactly
    assert torch.equal(to_levels(ds.train, 256)[:, 0], torch.from_numpy(train_x).long())
    assert torch.equal(to_levels(ds.test, 256)[:, 0], torch.from_numpy(test_x).long())
    assert torch.equal(ds.train_labels, torch.from_numpy(train_y).long())
    assert torch.equal(ds.test_labels, torch.from_numpy(test_y).long())
    torch.testing.assert_close(ds.train, torch.from_numpy(train_x).float().unsqueeze(1) / 255 * 2 - 1)


def test_subsets_and_range(tmp_path):
    _write_dataset(tmp_path)
    ds = mnist(root=tmp_path, n_train=2, n_test=1, data_range=(0.0, 1.0))
    assert ds.name == "mnist" and ds.train.shape[0] == 2 and ds.test.shape[0] == 1
    assert float(ds.train.min()) >= 0.0 and ds.data_range == (0.0, 1.0)
    with pytest.raises(ValueError, match="n_train must be an integer >= 1 or None"):
        mnist(root=tmp_path, n_train=0)


def test_missing_directory_says_where_and_how(tmp_path):
    with pytest.raises(FileNotFoundError) as err:
        fashion_mnist(root=tmp_path / "nowhere")
    msg = str(err.value)
    assert str(tmp_path / "nowhere") in msg and "apt-get install dataset-fashion-mnist" in msg
    assert "Nothing is downloaded" in msg
    with pytest.raises(FileNotFoundError, match="MNIST IDX files"):
        mnist(root=tmp_path / "nowhere")


def test_missing_file_names_the_candidates(tmp_path):
    _write_dataset(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(FileNotFoundError) as err:
        fashion_mnist(root=tmp_path)
    assert "t10k-labels-idx1-ubyte.gz" in str(err.value) and str(tmp_path) in str(err.value)


def test_wrong_magic_number(tmp_path):
    _write_dataset(tmp_path, gz=False)
    path = tmp_path / "train-images-idx3-ubyte"
    raw = bytearray(path.read_bytes())
    raw[2] = 0x0D  # float data instead of unsigned bytes
    path.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="bad IDX magic number 0x00000d03"):
        fashion_mnist(root=tmp_path)
    # a label file where an image file belongs
    path.write_bytes((tmp_path / "train-labels-idx1-ubyte").read_bytes())
    with pytest.raises(ValueError, match="expected 0x00000803"):
        fashion_mnist(root=tmp_path)


def test_truncated_and_overlong_files(tmp_path):
    _write_dataset(tmp_path, gz=False)
    path = tmp_path / "t10k-images-idx3-ubyte"
    raw = path.read_bytes()
    path.write_bytes(raw[:-10])
    with pytest.raises(ValueError, match="truncated"):
        fashion_mnist(root=tmp_path)
    path.write_bytes(raw + b"\x00")
    with pytest.raises(ValueError, match="longer than its header"):
        fashion_mnist(root=tmp_path)
    path.write_bytes(raw[:2])
    with pytest.raises(ValueError, match="too short"):
        read_idx(path, 3)


def test_truncated_gzip(tmp_path):
    _write_dataset(tmp_path, gz=True)
    path = tmp_path / "train-images-idx3-ubyte.gz"
    path.write_bytes(path.read_bytes()[:40])
    with pytest.raises(ValueError, match="cannot decompress"):
        fashion_mnist(root=tmp_path)


def test_label_count_mismatch(tmp_path):
    _write_dataset(tmp_path, gz=False)
    (tmp_path / "train-labels-idx1-ubyte").write_bytes(_idx_bytes(np.zeros(4, dtype=np.uint8)))
    with pytest.raises(ValueError, match="5 images but 4 labels"):
        fashion_mnist(root=tmp_path)
