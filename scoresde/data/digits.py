"""scikit-learn's handwritten digits (UCI optdigits test set): 1,797 images of 8 x 8 pixels with 17 grey levels.

The data ship inside scikit-learn, so this is the dataset that works everywhere without files.
"""

from __future__ import annotations

import torch

from .base import ArrayDataset, from_levels, seeded_split

DIGITS_LEVELS = 17
"""Pixel values of sklearn's digits are the integers 0..16."""


def digits(n_test: int = 297, seed: int = 0, data_range: tuple[float, float] = (-1.0, 1.0)) -> ArrayDataset:
    """The digits as (N, 1, 8, 8) float32 images, level k -> lo + (hi - lo) k / 16, with a fixed seeded split.

    Args:
        n_test: Size of the test split (the default leaves 1,500 training images).
        seed: Seed of the random partition; the same seed gives the same split on every machine.
        data_range: (lo, hi) the extreme levels map to.
    """
    from sklearn.datasets import load_digits

    raw = load_digits()
    levels = torch.as_tensor(raw.images, dtype=torch.int64)
    if int(levels.min()) < 0 or int(levels.max()) >= DIGITS_LEVELS:
        raise ValueError("sklearn's digits hold pixel values outside 0..16; the installed copy looks corrupt")
    images = from_levels(levels, DIGITS_LEVELS, data_range).unsqueeze(1)
    labels = torch.as_tensor(raw.target, dtype=torch.int64)
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
