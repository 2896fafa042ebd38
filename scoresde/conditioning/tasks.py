"""Conditional-generation tasks of the sampling CLI: ``python -m scoresde.sample ckpt=RUN task=NAME ...``.

A task is one object built from ``conf/task/NAME.yaml`` (its ``_target_`` is a :class:`Task` subclass, the other
keys its constructor arguments). The CLI loads the checkpoint and the solver as for plain sampling and, when a task
is configured, calls ``task.run(...)`` instead of drawing unconditional samples. Every task writes one PNG grid whose
rows are examples and whose columns show the condition (an input, a mask, a label, ...) and then several samples,
side by side (:func:`save_condition_grid`).

The interface (what the CLI passes; nothing else may be assumed):

    task.run(ckpt=Checkpoint, solver=Solver, n=int, steps=int | None, seed=int, device=torch.device,
             run_dir=Path) -> Path

* ``ckpt``: the loaded :class:`scoresde.Checkpoint` (model on ``device``, eval mode, EMA weights unless ``ema=false``);
  ``ckpt.sde``, ``ckpt.score_fn``, ``ckpt.event_shape``, ``ckpt.config`` and ``ckpt.load_dataset()`` are available.
* ``solver``: the configured :class:`scoresde.solvers.Solver` object (``solver=...`` on the command line).
* ``n``: the number of conditions (grid rows); how many samples each row shows is the task's own option.
* ``steps``: solver steps, or None for the solver's (or the task's) default.
* ``seed``: seeds every random draw of the task (one ``torch.Generator`` on ``device``).
* ``device``: where to sample.
* ``run_dir``: the run directory; the task writes its PNG (and, if it likes, an ``.npz``) there.
* returns the path of the PNG.

A task config is a ``# @package _global_`` file, so that its main option is a top-level key of the command line
(``mask=box``, ``label=3``) while the rest stay under ``task.`` (``task.samples=8``)::

    # @package _global_
    mask: half
    task:
      _target_: scoresde.conditioning.tasks.InpaintTask
      mask: ${mask}
      samples: 4
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from ..checkpoint import Checkpoint
from ..plotting import save_image_grid
from ..solvers.base import Solver


class Task(abc.ABC):
    """A conditional-generation task of the sampling CLI (see the module docstring for the contract)."""

    @abc.abstractmethod
    def run(
        self,
        *,
        ckpt: Checkpoint,
        solver: Solver,
        n: int,
        steps: int | None,
        seed: int,
        device: torch.device,
        run_dir: Path,
    ) -> Path:
        """Draw the task's conditional samples from ``ckpt``'s model and write one PNG grid into ``run_dir``.

        Returns:
            The path of the PNG.
        """


def save_condition_grid(
    columns: Sequence[Tensor],
    path: str | Path,
    *,
    data_range: tuple[float, float] = (-1.0, 1.0),
    title: str | None = None,
) -> Path:
    """Write a grid whose row r shows ``columns[0][r], columns[1][r], ...`` side by side.

    Args:
        columns: Tensors of shape (R, C, H, W) with a common shape, e.g. [inputs, masks, sample_1, ..., sample_k].
            A 1-channel column is repeated to 3 channels if another column has 3.
        path: Output PNG.
        data_range: The (lo, hi) range mapped to black and white.
        title: Optional title (say what the columns are).
    """
    if not columns:
        raise ValueError("columns must hold at least one (R, C, H, W) tensor")
    channels = max(int(c.shape[1]) for c in columns)
    cols = [c.detach().float().cpu().expand(-1, channels, -1, -1) if c.shape[1] == 1 else c for c in columns]
    shapes = {tuple(c.shape) for c in cols}
    if len(shapes) != 1 or len(next(iter(shapes))) != 4:
        raise ValueError(f"every column must have one shape (R, C, H, W), got {sorted(shapes)}")
    rows = torch.stack([c.detach().float().cpu() for c in cols], dim=1).flatten(0, 1)  # row-major (R * K, C, H, W)
    return save_image_grid(rows, path, data_range=data_range, nrow=len(cols), title=title)
