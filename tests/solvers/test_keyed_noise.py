"""noise="keyed": independent draws keyed by (seed, row, draw count), so a sample's noise ignores its batch."""

import pytest
import torch

import scoresde
from scoresde.solvers.noise import KeyedNoise

TARGET = scoresde.oracle.Gaussian(torch.tensor([1.0, -1.0]), std=torch.tensor([0.5, 2.0]))
SDE = scoresde.VPSDE()


def test_keyed_noise_does_not_depend_on_the_rest_of_the_batch():
    start = SDE.prior_sampling((6, 2), generator=torch.Generator().manual_seed(0))
    opts = dict(solver="euler_maruyama", steps=20, noise="keyed", seed=7)
    whole, _ = scoresde.sample(SDE, TARGET.score_fn(SDE), None, start=start, **opts)
    head, _ = scoresde.sample(SDE, TARGET.score_fn(SDE), None, start=start[:3], **opts)
    torch.testing.assert_close(head, whole[:3])
    tail, _ = scoresde.sample(SDE, TARGET.score_fn(SDE), None, start=start[3:], noise=KeyedNoise(7, offset=3),
                              solver="euler_maruyama", steps=20)  # fmt: skip
    torch.testing.assert_close(tail, whole[3:])
    other, _ = scoresde.sample(SDE, TARGET.score_fn(SDE), None, start=start, **(opts | {"seed": 8}))
    assert (other - whole).abs().min() > 0


def test_keyed_draws_are_standard_normal_and_fresh_per_call():
    noise = KeyedNoise(3)
    like = torch.zeros(4000, 8, dtype=torch.float64)
    a, b = noise.normal(like), noise.increment(like, torch.tensor(1.0), torch.tensor(0.9))
    for z in (a, b):
        assert abs(float(z.mean())) < 0.01 and abs(float(z.std()) - 1) < 0.01
    assert abs(float((a * b).mean())) < 0.01  # successive draws are independent


def test_keyed_noise_refuses_bad_arguments():
    with pytest.raises(ValueError, match="offset"):
        KeyedNoise(1, offset=-1)
    with pytest.raises(TypeError, match="seed"):
        KeyedNoise(1.5)
    with pytest.raises(ValueError, match="keyed"):
        scoresde.sample(SDE, TARGET.score_fn(SDE), (2, 2), noise="hashed", solver="euler_maruyama", steps=2)
