"""CIFAR-10 (Krizhevsky 2009) from the standard "python version" pickle batches in a local directory.

The directory (``cifar-10-batches-py`` from cifar-10-python.tar.gz) holds data_batch_1 ... data_batch_5 and
test_batch: pickled dicts with b"data", a (10000, 3072) uint8 array (1024 red, 1024 green, 1024 blue values per
image, rows top to bottom), and b"labels", 10,000 ints in 0..9. The pickles are read with an unpickler that only
accepts numpy arrays and plain containers, so a tampered file cannot run code. Nothing is downloaded.
"""

from __future__ import annotations

import codecs
import io
import pickle
from pathlib import Path

import numpy as np
import torch

from .._validation import check_int
from .base import ArrayDataset, RandomHorizontalFlip, from_levels

CIFAR10_ROOT = "/usr/share/datasets/cifar10"
"""Default directory; a ``cifar-10-batches-py`` subdirectory of ``root`` is used when present."""
TRAIN_BATCHES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_BATCHES = ("test_batch",)
_HINT = (
    "Get cifar-10-python.tar.gz from https://www.cs.toronto.edu/~kriz/cifar.html (on a machine with internet), "
    "extract it and put data_batch_1 ... data_batch_5 and test_batch in {root} or any directory, then pass "
    "root=DIR (on the command line: data.dataset.root=DIR). Nothing is downloaded at run time."
)


def _scalar(dtype: np.dtype, data: bytes) -> np.generic:
    """What numpy's pickled scalars call: the scalar of ``dtype`` stored in ``data``."""
    return np.frombuffer(data, dtype=dtype)[0]


_RECONSTRUCT = np.array(0).__reduce__()[0]
_FROMBUFFER = np.arange(2).__reduce_ex__(5)[0]  # how pickle protocol 5 rebuilds contiguous arrays
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy._core.multiarray", "_reconstruct"): _RECONSTRUCT,
    ("numpy.core.multiarray", "scalar"): _scalar,
    ("numpy._core.multiarray", "scalar"): _scalar,
    ("numpy.core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy._core.numeric", "_frombuffer"): _FROMBUFFER,
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,  # how Python 3 writes bytes at pickle protocol 2
}


class _ArrayUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the numpy names an array needs; any other global is refused."""

    def find_class(self, module: str, name: str):
        if (module, name) not in _ALLOWED:
            raise pickle.UnpicklingError(f"refusing to load {module}.{name}: only numpy arrays are allowed")
        return _ALLOWED[module, name]


def read_batch(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """One CIFAR-10 batch file -> (images uint8 (N, 3, 32, 32), labels int64 (N,)).

    Raises:
        ValueError: the file is not a valid CIFAR-10 pickle batch (bad pickle, missing keys, wrong shapes).
    """
    try:
        batch = _ArrayUnpickler(io.BytesIO(path.read_bytes()), encoding="bytes").load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, IndexError) as err:
        raise ValueError(
            f"{path}: not a readable CIFAR-10 pickle batch ({err}); the file is corrupt or truncated"
        ) from err
    if not isinstance(batch, dict):
        raise ValueError(f"{path}: expected a pickled dict, got {type(batch).__name__}")
    data = batch.get(b"data", batch.get("data"))
    labels = batch.get(b"labels", batch.get("labels"))
    if not isinstance(data, np.ndarray) or data.dtype != np.uint8 or data.ndim != 2 or data.shape[1] != 3 * 32 * 32:
        raise ValueError(f"{path}: b'data' must be a uint8 array of shape (N, 3072)")
    labels = np.asarray(labels, dtype=np.int64) if labels is not None else None
    if labels is None or labels.shape != (data.shape[0],) or labels.min() < 0 or labels.max() > 9:
        raise ValueError(f"{path}: b'labels' must hold {data.shape[0]} class indices in 0..9")
    return data.reshape(-1, 3, 32, 32), labels


def _batch_dir(root: Path) -> Path:
    sub = root / "cifar-10-batches-py"
    return sub if sub.is_dir() else root


def _load(root: Path, names: tuple[str, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    images, labels = [], []
    for name in names:
        path = root / name
        if not path.is_file():
            raise FileNotFoundError(f"cifar10: missing {path}. " + _HINT.format(root=root))
        x, y = read_batch(path)
        images.append(x)
        labels.append(y)
    return torch.from_numpy(np.concatenate(images)), torch.from_numpy(np.concatenate(labels))


def cifar10(
    root: str | Path = CIFAR10_ROOT,
    random_flip: bool = True,
    n_train: int | None = None,
    n_test: int | None = None,
    data_range: tuple[float, float] = (-1.0, 1.0),
) -> ArrayDataset:
    """CIFAR-10: 50,000 + 10,000 colour 32x32 images, 256 levels, 10 classes, as (N, 3, 32, 32).

    Args:
        root: Directory with the pickle batches (or their ``cifar-10-batches-py`` parent).
        random_flip: Attach :class:`RandomHorizontalFlip` as ``train_transform`` for the trainer to apply per batch.
        n_train, n_test: Keep only the first n images of a split (None: all).
        data_range: (lo, hi) the pixel values 0 and 255 map to.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"cifar10: the directory {root} does not exist. " + _HINT.format(root=root))
    check_int("n_train", n_train, or_none=True)
    check_int("n_test", n_test, or_none=True)
    batches = _batch_dir(root)
    train, train_labels = _load(batches, TRAIN_BATCHES)
    test, test_labels = _load(batches, TEST_BATCHES)
    return ArrayDataset(
        name="cifar10",
        train=from_levels(train[:n_train], 256, data_range),
        test=from_levels(test[:n_test], 256, data_range),
        train_labels=train_labels[:n_train],
        test_labels=test_labels[:n_test],
        levels=256,
        data_range=data_range,
        num_classes=10,
        train_transform=RandomHorizontalFlip() if random_flip else None,
    )
