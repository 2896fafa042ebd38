"""The vendored digits: shapes, levels, the fixed split, and equality with scikit-learn's copy where it is installed."""

import hashlib

import numpy as np
import pytest
import torch

from scoresde.data import digits, to_levels
from scoresde.data.digits import load_digit_arrays

CLASS_COUNTS = [178, 182, 177, 183, 181, 182, 181, 179, 174, 180]  # of the UCI optdigits test set (1,797 images)
# sha256 of the uint8 arrays as vendored (checked equal to scikit-learn's load_digits where it is installed)
IMAGES_SHA256 = "8f26b2bd9d135c256808f68f14fdabddde6d9c7f869ae419704b051f0f14b3b3"
TARGET_SHA256 = "8ba4f891220f5e4c9c819638d1602d74b83618f167043c6da52a2a247841ddf0"


def test_vendored_arrays_are_the_uci_digits():
    images, target = load_digit_arrays()
    assert images.shape == (1797, 8, 8) and images.dtype == np.uint8 and int(images.max()) == 16
    assert np.bincount(target).tolist() == CLASS_COUNTS
    assert hashlib.sha256(images.tobytes()).hexdigest() == IMAGES_SHA256
    assert hashlib.sha256(target.tobytes()).hexdigest() == TARGET_SHA256


def test_vendored_arrays_equal_scikit_learns():
    datasets = pytest.importorskip("sklearn.datasets")
    raw = datasets.load_digits()
    images, target = load_digit_arrays()
    assert np.array_equal(images, raw.images.astype(np.uint8)) and np.array_equal(raw.images, images)
    assert np.array_equal(target, raw.target)


def test_digits_shapes_levels_and_split():
    ds = digits()
    assert ds.name == "digits" and ds.event_shape == (1, 8, 8) and ds.levels == 17 and ds.num_classes == 10
    assert ds.train.shape == (1500, 1, 8, 8) and ds.test.shape == (297, 1, 8, 8)
    both = torch.cat([ds.train, ds.test])
    assert float(both.min()) == -1.0 and float(both.max()) == 1.0
    # every pixel is one of the 17 levels, and levels -> model -> levels reproduces the stored integers
    images, target = load_digit_arrays()
    k = to_levels(both, 17)
    torch.testing.assert_close(both, -1 + 2 * k.float() / 16)
    labels = torch.cat([ds.train_labels, ds.test_labels])
    assert sorted(k.flatten(1).sum(1).tolist()) == sorted(torch.as_tensor(images).flatten(1).sum(1).long().tolist())
    assert torch.bincount(labels).tolist() == CLASS_COUNTS


def test_digits_split_is_fixed_and_disjoint():
    a, b = digits(), digits()
    assert torch.equal(a.train, b.train) and torch.equal(a.test_labels, b.test_labels)
    other = digits(seed=1)
    assert not torch.equal(a.test, other.test)
    raw = torch.as_tensor(load_digit_arrays()[0]).flatten(1)
    # the split partitions the 1,797 images: each raw image appears in exactly one split (as a multiset)
    ka = torch.cat([to_levels(a.train, 17), to_levels(a.test, 17)]).flatten(1)
    assert sorted(map(tuple, ka.tolist())) == sorted(map(tuple, raw.long().tolist()))
    small = digits(n_test=100, data_range=(0.0, 1.0))
    assert small.test.shape[0] == 100 and float(small.train.min()) == 0.0
