"""sklearn digits: shapes, levels, the fixed split."""

import torch
from sklearn.datasets import load_digits

from scoresde.data import digits, to_levels


def test_digits_shapes_levels_and_split():
    ds = digits()
    assert ds.name == "digits" and ds.event_shape == (1, 8, 8) and ds.levels == 17 and ds.num_classes == 10
    assert ds.train.shape == (1500, 1, 8, 8) and ds.test.shape == (297, 1, 8, 8)
    both = torch.cat([ds.train, ds.test])
    assert float(both.min()) == -1.0 and float(both.max()) == 1.0
    # every pixel is one of the 17 levels, and levels -> model -> levels reproduces sklearn's integers
    raw = load_digits()
    k = to_levels(both, 17)
    torch.testing.assert_close(both, -1 + 2 * k.float() / 16)
    labels = torch.cat([ds.train_labels, ds.test_labels])
    assert sorted(k.flatten(1).sum(1).tolist()) == sorted(torch.as_tensor(raw.images).flatten(1).sum(1).long().tolist())
    assert torch.equal(torch.bincount(labels), torch.bincount(torch.as_tensor(raw.target)))


def test_digits_split_is_fixed_and_disjoint():
    a, b = digits(), digits()
    assert torch.equal(a.train, b.train) and torch.equal(a.test_labels, b.test_labels)
    other = digits(seed=1)
    assert not torch.equal(a.test, other.test)
    raw = torch.as_tensor(load_digits().images).flatten(1)
    # the split partitions the 1,797 images: each raw image appears in exactly one split (as a multiset)
    ka = torch.cat([to_levels(a.train, 17), to_levels(a.test, 17)]).flatten(1)
    assert sorted(map(tuple, ka.tolist())) == sorted(map(tuple, raw.long().tolist()))
    small = digits(n_test=100, data_range=(0.0, 1.0))
    assert small.test.shape[0] == 100 and float(small.train.min()) == 0.0
