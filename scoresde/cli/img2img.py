"""``python -m scoresde.sample ckpt=RUN task=img2img t_start=0.5``: SDEdit on test images (:func:`scoresde.img2img`).

Writes ``img2img.png`` (per row the original and ``task.samples`` edits) and ``img2img.npz`` (key ``samples``,
shape (n * samples, C, H, W)) into the run directory.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .._validation import check_int
from ..editing import img2img
from .tasks import Task, first_test_images, save_condition_grid


class Img2ImgTask(Task):
    """``task=img2img``: noise each test image to ``t_start``, then solve back with the CLI's solver.

    Args:
        t_start: Where the reverse process starts, in (eps, T]: small keeps the input, T forgets it.
        samples: Edits per input.
        nfe: Budget of score evaluations per edit instead of ``steps``.
    """

    def __init__(self, t_start: float = 0.5, samples: int = 4, nfe: int | None = None) -> None:
        self.t_start, self.samples, self.nfe = t_start, check_int("task.samples (edits per input)", samples), nfe

    def run(self, *, ckpt, solver, n, steps, seed, device, run_dir, progress=False) -> Path:
        if len(ckpt.event_shape) != 3:
            raise ValueError(f"task=img2img needs a model of images (C, H, W), this one has {ckpt.event_shape}")
        x0, data_range = first_test_images(ckpt, n, device)
        gen = torch.Generator(device).manual_seed(seed)
        x, info = img2img(ckpt.sde, ckpt.score_fn, x0.repeat_interleave(self.samples, 0), self.t_start,
                          solver=solver, steps=steps, nfe=self.nfe, generator=gen, progress=progress)  # fmt: skip
        run_dir.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(run_dir / "img2img.npz", samples=x.cpu().numpy(), nfe=info.nfe, t_start=self.t_start)
        columns = [x0] + list(x.view(n, self.samples, *x.shape[1:]).unbind(1))
        title = f"original | {self.samples} edits from t={self.t_start:g} ({info.nfe} score evaluations each)"
        return save_condition_grid(columns, run_dir / "img2img.png", data_range=data_range, title=title)
