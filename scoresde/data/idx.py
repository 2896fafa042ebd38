"""MNIST-style IDX files (MNIST, Fashion-MNIST) from a local directory, plain or gzip-compressed.

IDX format (LeCun et al.): a 4-byte big-endian magic number 0x00 0x00 <type> <ndim>, then ndim big-endian
uint32 sizes, then the values in row-major order. Images are type 0x08 (unsigned byte), ndim 3, (N, rows, cols);
labels are type 0x08, ndim 1, (N,). Pixels 0..255 are 256 levels, scaled to data_range by the level convention of
:mod:`scoresde.data.base`. Nothing is downloaded.
"""

from __future__ import annotations

import gzip
import struct
import zlib
from pathlib import Path

import numpy as np
import torch

from .._validation import check_int
from .base import ArrayDataset, from_levels

FASHION_MNIST_ROOT = "/usr/share/datasets/fashion-mnist"
"""Where Debian's ``dataset-fashion-mnist`` package puts the files (``apt-get install dataset-fashion-mnist``)."""
MNIST_ROOT = "/usr/share/datasets/mnist"
"""Default MNIST directory (no system package ships it: copy the four IDX files there or pass ``root``)."""

UBYTE = 0x08
IDX_LEVELS = 256
_SPLIT_PREFIX = {"train": "train", "test": "t10k"}
_FASHION_CLASSES = 10


def read_idx(path: str | Path, expected_ndim: int) -> np.ndarray:
    """Read one unsigned-byte IDX file (plain or .gz) into a uint8 array of its stated shape.

    Raises:
        ValueError: wrong magic number, unexpected dimensionality, truncated or over-long payload, bad gzip data.
    """
    path = Path(path)
    try:
        raw = gzip.decompress(path.read_bytes()) if path.suffix == ".gz" else path.read_bytes()
    except (OSError, EOFError, zlib.error) as err:
        if isinstance(err, FileNotFoundError):
            raise
        raise ValueError(f"{path}: cannot decompress ({err}); the file is corrupt or truncated") from err
    if len(raw) < 4:
        raise ValueError(f"{path}: only {len(raw)} bytes, too short for an IDX header; the file is truncated")
    zero, dtype, ndim = struct.unpack(">HBB", raw[:4])
    if zero != 0 or dtype != UBYTE or ndim != expected_ndim:
        raise ValueError(
            f"{path}: bad IDX magic number 0x{raw[:4].hex()}; expected 0x000008{expected_ndim:02x} "
            f"(unsigned bytes, {expected_ndim} dims). Is this an IDX {'image' if expected_ndim == 3 else 'label'} file?"
        )
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise ValueError(f"{path}: the IDX header is truncated ({len(raw)} bytes)")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    expected = header + int(np.prod(shape))
    if len(raw) != expected:
        what = "truncated" if len(raw) < expected else "longer than its header says"
        raise ValueError(f"{path}: {len(raw)} bytes but the header {shape} needs {expected}; the file is {what}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _find(root: Path, split: str, kind: str, dataset: str, hint: str) -> Path:
    """The IDX file of a split ('train'/'test') and kind ('images'/'labels'), accepting '-' or '.' and .gz."""
    ndim = 3 if kind == "images" else 1
    stem = f"{_SPLIT_PREFIX[split]}-{kind}"
    names = [f"{stem}{sep}idx{ndim}-ubyte{gz}" for sep in ("-", ".") for gz in ("", ".gz")]
    for name in names:
        if (root / name).is_file():
            return root / name
    raise FileNotFoundError(
        f"{dataset}: no {split} {kind} file in {root} (looked for {', '.join(names)}). {hint} "
        "Nothing is downloaded at run time."
    )


def load_idx_dataset(
    root: str | Path,
    *,
    name: str,
    hint: str,
    n_train: int | None = None,
    n_test: int | None = None,
    data_range: tuple[float, float] = (-1.0, 1.0),
) -> ArrayDataset:
    """Read the four IDX files of an MNIST-like dataset in ``root`` into an :class:`ArrayDataset` of (N, 1, H, W).

    Args:
        root: Directory holding train-images-idx3-ubyte, train-labels-idx1-ubyte, t10k-images-idx3-ubyte and
            t10k-labels-idx1-ubyte (each optionally .gz; '.idx' instead of '-idx' is accepted).
        name: Dataset name, used in the result and in error messages.
        hint: How to get the files, appended to the missing-file error.
        n_train, n_test: Keep only the first n images of a split (None: all), for quick runs.
        data_range: (lo, hi) the pixel values 0 and 255 map to.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(
            f"{name}: the directory {root} does not exist. {hint} Nothing is downloaded at run time."
        )
    splits = {}
    for split, limit in (("train", n_train), ("test", n_test)):
        check_int(f"n_{split}", limit, or_none=True)
        images = read_idx(_find(root, split, "images", name, hint), 3)
        labels = read_idx(_find(root, split, "labels", name, hint), 1)
        if images.shape[0] != labels.shape[0]:
            raise ValueError(f"{name} {split}: {images.shape[0]} images but {labels.shape[0]} labels in {root}")
        images, labels = images[:limit], labels[:limit]
        x = from_levels(torch.from_numpy(images.copy()), IDX_LEVELS, data_range).unsqueeze(1)
        splits[split] = (x, torch.from_numpy(labels.astype(np.int64)))
    return ArrayDataset(
        name=name,
        train=splits["train"][0],
        test=splits["test"][0],
        train_labels=splits["train"][1],
        test_labels=splits["test"][1],
        levels=IDX_LEVELS,
        data_range=data_range,
        num_classes=_FASHION_CLASSES,
    )


def fashion_mnist(
    root: str | Path = FASHION_MNIST_ROOT,
    n_train: int | None = None,
    n_test: int | None = None,
    data_range: tuple[float, float] = (-1.0, 1.0),
) -> ArrayDataset:
    """Fashion-MNIST (Xiao et al. 2017): 60,000 + 10,000 grey 28x28 images, 256 levels, 10 classes."""
    hint = (
        "On Debian/Ubuntu install it with `sudo apt-get install dataset-fashion-mnist` (which fills "
        f"{FASHION_MNIST_ROOT}), or put the four IDX files in a directory and pass root=DIR "
        "(on the command line: data.dataset.root=DIR)."
    )
    return load_idx_dataset(
        root, name="fashion_mnist", hint=hint, n_train=n_train, n_test=n_test, data_range=data_range
    )


def mnist(
    root: str | Path = MNIST_ROOT,
    n_train: int | None = None,
    n_test: int | None = None,
    data_range: tuple[float, float] = (-1.0, 1.0),
) -> ArrayDataset:
    """MNIST (LeCun et al. 1998): 60,000 + 10,000 grey 28x28 digits, 256 levels, 10 classes."""
    hint = (
        "Copy the four MNIST IDX files (train-images-idx3-ubyte.gz, train-labels-idx1-ubyte.gz, "
        "t10k-images-idx3-ubyte.gz, t10k-labels-idx1-ubyte.gz, from the MNIST distribution) into "
        f"{MNIST_ROOT} or any directory and pass root=DIR (on the command line: data.dataset.root=DIR)."
    )
    return load_idx_dataset(root, name="mnist", hint=hint, n_train=n_train, n_test=n_test, data_range=data_range)
