"""The 8 x 8 handwritten digits (UCI Optical Recognition of Handwritten Digits): 1,797 images with 17 grey levels.

The images and labels ship inside this package (``digits.npz``, about 45 kB: ``images`` uint8 (1797, 8, 8) with
values 0..16, ``target`` uint8 (1797,)), in the order of scikit-learn's ``load_digits``, so this is the dataset
that works everywhere without files or extra dependencies. The data are those of Alpaydin & Kaynak (1998), UCI
Machine Learning Repository, licensed CC BY 4.0 (see the NOTICE file).
"""

from __future__ import annotations

from importlib import resources

import numpy as np
import torch

from .base import ArrayDataset, from_levels, seeded_split

DIGITS_LEVELS = 17
"""Pixel values of the digits are the integers 0..16."""

DIGITS_FILE = "digits.npz"


def load_digit_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The vendored digits as (images (1797, 8, 8) uint8 in 0..16, labels (1797,) uint8), sklearn's order."""
    with resources.files(__package__).joinpath(DIGITS_FILE).open("rb") as f, np.load(f) as z:
        return z["images"], z["target"]


def digits(n_test: int = 297, seed: int = 0, data_range: tuple[float, float] = (-1.0, 1.0)) -> ArrayDataset:
    """The digits as (N, 1, 8, 8) float32 images, level k -> lo + (hi - lo) k / 16, with a fixed seeded split.

    Args:
        n_test: Size of the test split (the default leaves 1,500 training images).
        seed: Seed of the random partition; the same seed gives the same split on every machine.
        data_range: (lo, hi) the extreme levels map to.
    """
    raw_images, raw_labels = load_digit_arrays()
    levels = torch.as_tensor(raw_images, dtype=torch.int64)
    if int(levels.min()) < 0 or int(levels.max()) >= DIGITS_LEVELS:
        raise ValueError(f"{DIGITS_FILE} holds pixel values outside 0..16; the installed copy looks corrupt")
    images = from_levels(levels, DIGITS_LEVELS, data_range).unsqueeze(1)
    labels = torch.as_tensor(raw_labels, dtype=torch.int64)
    train_idx, test_idx = seeded_split(images.shape[0], n_test, seed)
    return ArrayDataset(
        name="digits",
        train=images[train_idx],
        test=images[test_idx],
        train_labels=labels[train_idx],
        test_labels=labels[test_idx],
        levels=DIGITS_LEVELS,
        data_range=data_range,
        num_classes=10,
    )
