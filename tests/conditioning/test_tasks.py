"""The sampling CLI's conditional tasks: config composition, masks, and the grids they write."""

from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir
from torch import nn

import scoresde
from scoresde._instantiate import instantiate
from scoresde.cli._runtime import CONF_DIR
from scoresde.cli.tasks import ColorizeTask, InpaintTask, Task, make_mask
from scoresde.training.checkpoint import Checkpoint


class _UnitGaussianScore(nn.Module):
    """The exact score of N(0, I) data under ``sde``: a stand-in for a trained network."""

    def __init__(self, sde):
        super().__init__()
        self.sde = sde

    def forward(self, x, t):
        m, s = self.sde.mean_scale(t), self.sde.std(t)
        return -x / (m**2 + s**2).reshape(-1, *[1] * (x.ndim - 1))


def _ckpt(event_shape, tmp_path):
    sde = scoresde.VPSDE()
    gen = torch.Generator().manual_seed(0)
    data = {
        "_target_": "scoresde.data.base.ArrayDataset",
        "name": "toy",
        "train": torch.randn(8, *event_shape, generator=gen).clamp(-1, 1),
        "test": torch.randn(6, *event_shape, generator=gen).clamp(-1, 1),
    }
    config = {"data": {"dataset": data}}
    return Checkpoint(sde, _UnitGaussianScore(sde), config, 0, tuple(event_shape), tmp_path / "ckpt.pt")


def test_task_configs_compose_with_their_top_level_options():
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        plain = compose("sample", overrides=["ckpt=x"])
        box = compose(
            "sample", overrides=["ckpt=x", "task=inpaint", "mask=box", "task.method=smc", "+task.particles=3"]
        )
        colour = compose("sample", overrides=["ckpt=x", "task=colorize"])
    assert plain.task is None
    task = instantiate(dict(box.task))
    assert isinstance(task, InpaintTask) and isinstance(task, Task)
    assert (task.mask, task.method, task.options) == ("box", "smc", {"particles": 3})
    assert isinstance(instantiate(dict(colour.task)), ColorizeTask)


@pytest.mark.parametrize("spec", ["half", "box", "random"])
def test_masks_observe_part_of_every_image(spec):
    mask = make_mask(spec, (3, 8, 8), 4, torch.Generator().manual_seed(0))
    assert mask.shape == (4, 3, 8, 8) and mask.dtype == torch.bool
    assert bool(mask.flatten(1).any(1).all()) and not bool(mask.flatten(1).all(1).any())
    assert torch.equal(mask[:, 0], mask[:, 2])  # one mask for all channels of a pixel


def test_mask_from_a_file(tmp_path):
    arr = np.zeros((8, 8), dtype=bool)
    arr[:, :3] = True
    np.save(tmp_path / "m.npy", arr)
    mask = make_mask(str(tmp_path / "m.npy"), (1, 8, 8), 2, torch.Generator())
    assert torch.equal(mask[1, 0], torch.from_numpy(arr))
    with pytest.raises(ValueError, match="mask"):
        make_mask(str(tmp_path / "missing.npy"), (1, 8, 8), 2, torch.Generator())
    with pytest.raises(ValueError, match="shape"):
        make_mask(str(tmp_path / "m.npy"), (1, 4, 4), 2, torch.Generator())


@pytest.mark.parametrize("method", ["replacement", "smc"])
def test_inpaint_task_writes_a_grid_with_the_observed_pixels_kept(method, tmp_path):
    ckpt = _ckpt((1, 8, 8), tmp_path)
    task = InpaintTask(mask="box", method=method, samples=3, **({"particles": 2} if method == "smc" else {}))
    solver = scoresde.solvers.EulerMaruyama()
    path = task.run(ckpt=ckpt, solver=solver, n=4, steps=5, seed=0, device=torch.device("cpu"), run_dir=tmp_path)
    assert path == tmp_path / "inpaint_box.png" and path.is_file()
    x = torch.from_numpy(np.load(tmp_path / "inpaint_box.npz")["samples"])
    mask = make_mask("box", (1, 8, 8), 12, torch.Generator())
    y = ckpt.load_dataset().test[:4].repeat_interleave(3, 0)
    assert x.shape == (12, 1, 8, 8) and torch.equal(x[mask], y[mask])


def test_colorize_task_needs_colour_data_and_keeps_the_grey_level(tmp_path):
    with pytest.raises(ValueError, match="colour"):
        ColorizeTask().run(ckpt=_ckpt((1, 4, 4), tmp_path), solver=scoresde.solvers.Ancestral(), n=2, steps=3,
                           seed=0, device=torch.device("cpu"), run_dir=tmp_path)  # fmt: skip
    ckpt = _ckpt((3, 4, 4), tmp_path)
    path = ColorizeTask(samples=2).run(ckpt=ckpt, solver=scoresde.solvers.Ancestral(), n=3, steps=4, seed=1,
                                       device=torch.device("cpu"), run_dir=tmp_path)  # fmt: skip
    assert Path(path).is_file()
    x = torch.from_numpy(np.load(tmp_path / "colorize.npz")["samples"])
    grey = ckpt.load_dataset().test[:3].mean(1, keepdim=True).repeat_interleave(2, 0)
    torch.testing.assert_close(x.mean(1, keepdim=True), grey)
