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
      _target_: scoresde.cli.tasks.InpaintTask
      mask: ${mask}
      samples: 4
"""

from __future__ import annotations

import abc
from collections.abc import Sequence
from pathlib import Path

import torch
from torch import Tensor

from .._validation import check_int
from ..solvers.base import Solver
from ..training.checkpoint import Checkpoint
from .plotting import save_image_grid


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
    scale = max(2, 96 // max(rows.shape[-2:]))  # small images (8x8 digits) get more screen pixels per pixel
    return save_image_grid(rows, path, data_range=data_range, nrow=len(cols), title=title, scale=scale)


def first_test_images(ckpt: Checkpoint, n: int, device: torch.device) -> tuple[Tensor, tuple[float, float]]:
    """The first ``n`` images of the checkpoint's test split on ``device``, and the data range of its config."""
    data_range = tuple(ckpt.config["data"]["dataset"].get("data_range", (-1.0, 1.0)))
    test = ckpt.load_dataset().test
    if len(test) < n:
        raise ValueError(f"n={n} but the test split holds only {len(test)} images")
    return test[:n].to(device), data_range


# ---------------------------------------------------------------------------------------------- masks
def make_mask(spec: str | Path, event_shape: tuple[int, ...], n: int, generator: torch.Generator) -> Tensor:
    """A boolean mask, True where observed, of shape (n, *event_shape) for images (C, H, W).

    ``spec``: "half" (the top half observed), "box" (all but a centred box of half the height and width),
    "random" (each pixel observed with probability 1/2, a new mask per row), or the path of a .npy / .pt file or an
    image (.png, .jpg; pixels brighter than half observed) of shape (H, W) or (C, H, W).
    """
    if len(event_shape) != 3:
        raise ValueError(f"the inpainting task needs image data (C, H, W), got event shape {tuple(event_shape)}")
    c, h, w = event_shape
    mask = torch.ones(n, 1, h, w, dtype=torch.bool)
    if spec == "half":
        mask[:, :, h // 2 :] = False
    elif spec == "box":
        mask[:, :, h // 4 : h // 4 + max(h // 2, 1), w // 4 : w // 4 + max(w // 2, 1)] = False
    elif spec == "random":
        mask = torch.rand(n, 1, h, w, generator=generator, device=generator.device).cpu() < 0.5
    else:
        mask = _load_mask(Path(spec), (h, w)).unsqueeze(0).expand(n, -1, -1, -1)
        _check_mask_channels(mask, spec, c)
    return mask.expand(n, c, h, w).clone()


def _load_mask(path: Path, size: tuple[int, int]) -> Tensor:
    if not path.is_file():
        raise ValueError(f"mask must be half, box, random or a mask file (.npy, .pt, .png, ...), got {str(path)!r}")
    if path.suffix == ".npy":
        import numpy as np

        arr = torch.as_tensor(np.load(path))
    elif path.suffix == ".pt":
        arr = torch.load(path, weights_only=True)
    else:
        import matplotlib.image

        arr = torch.as_tensor(matplotlib.image.imread(path)).float()
        arr = (arr[..., :3].mean(-1) if arr.ndim == 3 else arr) / (255.0 if arr.max() > 1 else 1.0)
    arr = arr > 0.5 if arr.dtype != torch.bool else arr
    if tuple(arr.shape[-2:]) != size or arr.ndim not in (2, 3):
        raise ValueError(f"mask file {path} has shape {tuple(arr.shape)}; expected (H, W) = {size} or (C, H, W)")
    return arr if arr.ndim == 3 else arr.unsqueeze(0)


def _check_mask_channels(mask: Tensor, spec: str | Path, channels: int) -> None:
    if mask.shape[1] not in (1, channels):
        raise ValueError(
            f"mask file {spec} has {mask.shape[1]} channels but the images have {channels}: give a (H, W) mask, or "
            f"(1, H, W) or ({channels}, H, W)"
        )


# ---------------------------------------------------------------------------------------------- tasks
class _ConditionalTask(Task):
    """What inpainting and colorization share: the data to condition on, the method, the grid."""

    title = ""

    def __init__(self, method: str = "replacement", samples: int = 4, nfe: int | None = None, **options) -> None:
        self.method, self.nfe, self.options = method, nfe, options
        self.samples = check_int("samples (per input)", samples)

    def _method(self, solver: Solver):
        from ..conditioning.inpainting import METHODS, Replacement
        from ..conditioning.methods import make_method

        options = dict(self.options)
        if issubclass(METHODS.get(self.method, object), Replacement):
            options.setdefault("solver", solver)  # the CLI's solver drives replacement and RePaint
        return make_method(self.method, METHODS, **options)

    def _write(self, run_dir: Path, name: str, columns: list[Tensor], x: Tensor, data_range, info) -> Path:
        import numpy as np

        run_dir.mkdir(parents=True, exist_ok=True)
        np.savez_compressed(run_dir / f"{name}.npz", samples=x.cpu().numpy(), nfe=info.nfe, wall_time=info.wall_time)
        title = f"{self.title} ({self.method}, {info.nfe} score evaluations per sample)"
        return save_condition_grid(columns, run_dir / f"{name}.png", data_range=data_range, title=title)


class InpaintTask(_ConditionalTask):
    """``task=inpaint``: per row the original, the observed input, the mask (white = observed) and inpaintings.

    Args:
        mask: "half", "box", "random" or a mask file (see :func:`make_mask`).
        method: "replacement" (the paper's, with the configured solver), "repaint" or "smc".
        samples: Inpaintings per input.
        nfe: Budget of score evaluations per sample instead of ``steps``.
        **options: Options of the method, e.g. ``particles`` (smc) or ``resamplings`` (repaint).
    """

    def __init__(self, mask: str = "half", method: str = "replacement", samples: int = 4, nfe: int | None = None,
                 **options) -> None:  # fmt: skip
        super().__init__(method, samples, nfe, **options)
        self.mask = str(mask)
        self.title = f"original | input (grey: missing) | mask ({Path(self.mask).name}) | {samples} samples"

    def run(self, *, ckpt, solver, n, steps, seed, device, run_dir, progress=False) -> Path:
        from ..conditioning.inpainting import inpaint

        gen = torch.Generator(device).manual_seed(seed)
        x0, data_range = first_test_images(ckpt, n, device)
        mask = make_mask(self.mask, ckpt.event_shape, n, gen).to(device)
        k = self.samples
        x, info = inpaint(ckpt.sde, ckpt.score_fn, x0.repeat_interleave(k, 0), mask.repeat_interleave(k, 0),
                          method=self._method(solver), steps=steps, nfe=self.nfe, generator=gen,
                          progress=progress)  # fmt: skip
        lo, hi = data_range
        shown = torch.where(mask, x0, torch.full_like(x0, (lo + hi) / 2))  # missing pixels in mid-grey
        columns = [x0, shown, torch.where(mask, hi, lo).to(x0)] + list(x.view(n, k, *x.shape[1:]).unbind(1))
        return self._write(run_dir, f"inpaint_{Path(self.mask).stem}", columns, x, data_range, info)


class ColorizeTask(_ConditionalTask):
    """``task=colorize``: per row the original colour image, its grey level and colorizations (3-channel data).

    Args:
        method, samples, nfe, **options: As for :class:`InpaintTask`.
    """

    @property
    def title(self) -> str:  # type: ignore[override]
        return f"original | grey input | {self.samples} samples"

    def run(self, *, ckpt, solver, n, steps, seed, device, run_dir, progress=False) -> Path:
        from ..conditioning.colorization import colorize, to_grey

        if len(ckpt.event_shape) != 3 or ckpt.event_shape[0] != 3:
            raise ValueError(f"task=colorize needs a model of colour images (3, H, W), this one has {ckpt.event_shape}")
        gen = torch.Generator(device).manual_seed(seed)
        x0, data_range = first_test_images(ckpt, n, device)
        grey = to_grey(x0)
        k = self.samples
        x, info = colorize(ckpt.sde, ckpt.score_fn, grey.repeat_interleave(k, 0), method=self._method(solver),
                           steps=steps, nfe=self.nfe, generator=gen, progress=progress)  # fmt: skip
        columns = [x0, grey] + list(x.view(n, k, *x.shape[1:]).unbind(1))
        return self._write(run_dir, "colorize", columns, x, data_range, info)
