"""benchmarks/fid_baselines.py: the baselines' samples lie on the data's level grid with the training statistics."""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
from fid_baselines import baseline_samples  # noqa: E402


def test_baseline_samples_are_on_the_grid_with_the_training_moments():
    gen = torch.Generator().manual_seed(0)
    levels, n = 5, 4000
    k = torch.stack([torch.randint(0, 5, (2000,), generator=gen), torch.full((2000,), 1)], 1)
    k[:, 1] += (torch.rand(2000, generator=gen) < 0.5).long()  # coordinate 2: levels 1 and 2, half each
    train = (-1 + 2 * k.float() / (levels - 1)).reshape(2000, 1, 2)
    out = baseline_samples(train, levels, (-1.0, 1.0), n, seed=0)
    for name, x in out.items():
        assert x.shape == (n, 1, 2), name
        on_grid = (x + 1) * (levels - 1) / 2
        assert torch.allclose(on_grid, on_grid.round(), atol=1e-5), name
        assert (x.reshape(n, 2).mean(0) - train.reshape(2000, 2).mean(0)).abs().max() < 0.08, name
    cat = out["per-pixel categorical"].reshape(n, 2)
    seen = (cat[:, 1] == -0.5) | (cat[:, 1] == 0.0)  # the levels seen in training; add-one smoothing gives the
    assert 0.99 < float(seen.float().mean()) < 1.0  # other three 1/2005 each
