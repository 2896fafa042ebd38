"""What the CLI writes while training: sample snapshots (the EMA model's samples as a PNG grid or 2-D scatter) and
the loss curve, given to :class:`scoresde.training.Trainer` as its ``snapshot`` and ``callbacks``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from .._validation import check_choice
from ..training.trainer import Callback, Trainer, TrainResult
from .plotting import save_image_grid, save_loss_curve, save_scatter

KINDS = ("image", "points")


class SampleSnapshot:
    """``snapshot(model, step)`` draws ``n`` samples with :func:`scoresde.sample` and writes ``samples_<step>.png``.

    Images (C, H, W) become a grid; 2-D points a scatter over ``reference`` data. Every call uses a generator
    seeded by (``seed``, step), so snapshots are reproducible and never touch the training RNG streams.

    Args:
        run_dir: Output directory.
        event_shape: Shape of one sample, e.g. (1, 8, 8) or (2,).
        solver: A solver object or name, passed to :func:`scoresde.sample`.
        n: Number of samples.
        steps: Solver steps (None: the solver's default).
        kind: ``"image"`` or ``"points"`` (the data config's ``kind``).
        data_range: Range mapped to black/white in image grids.
        reference: Data drawn under the samples of a scatter plot, shape (N, 2).
        seed: Base seed.
        save_arrays: Also write ``samples_<step>.npz`` (key ``samples``).
        sample_options: Further keyword arguments for :func:`scoresde.sample` (e.g. ``eps``).
    """

    def __init__(
        self,
        run_dir: str | Path,
        event_shape: tuple[int, ...],
        solver: Any = "pc",
        *,
        n: int = 64,
        steps: int | None = None,
        kind: str = "image",
        data_range: tuple[float, float] = (-1.0, 1.0),
        reference: Tensor | None = None,
        seed: int = 0,
        save_arrays: bool = False,
        sample_options: dict[str, Any] | None = None,
    ) -> None:
        check_choice("kind", kind, KINDS)
        if n < 1:
            raise ValueError(f"n must be a positive integer, got {n}")
        self.event_shape = tuple(int(d) for d in event_shape)
        self.run_dir, self.solver, self.n, self.steps, self.kind = Path(run_dir), solver, n, steps, kind
        self.data_range, self.reference, self.seed = tuple(data_range), reference, seed
        self.save_arrays, self.sample_options = save_arrays, dict(sample_options or {})
        self.last: Path | None = None

    @torch.no_grad()
    def draw(self, model: nn.Module, step: int) -> tuple[Tensor, Any]:
        """n samples (n, *event_shape) from ``model`` (a ScoreModel with ``.sde``) and the sampler's info."""
        from ..sampling import sample

        device = next(model.parameters()).device
        generator = torch.Generator(device).manual_seed(self.seed * 1_000_003 + step)
        return sample(
            model.sde,
            model,
            (self.n, *self.event_shape),
            solver=self.solver,
            steps=self.steps,
            generator=generator,
            device=device,
            **self.sample_options,
        )

    def __call__(self, model: nn.Module, step: int) -> Path:
        was_training = model.training
        model.eval()
        try:
            x, info = self.draw(model, step)
        finally:
            model.train(was_training)
        return self.write(x, step, nfe=getattr(info, "nfe", None))

    def write(self, x: Tensor, step: int, *, nfe: int | None = None, name: str | None = None) -> Path:
        """Write samples x as ``<name or samples_<step>>.png`` (and .npz with ``save_arrays``)."""
        self.run_dir.mkdir(parents=True, exist_ok=True)
        stem = name or f"samples_{step:08d}"
        title = f"step {step}" + (f", {nfe} score evaluations" if nfe is not None else "")
        path = self.run_dir / f"{stem}.png"
        if self.kind == "image":
            save_image_grid(x, path, data_range=self.data_range, title=title)
        else:
            save_scatter(x.reshape(x.shape[0], -1)[:, :2], path, reference=self.reference, title=title)
        if self.save_arrays:
            np.savez_compressed(self.run_dir / f"{stem}.npz", samples=x.detach().cpu().numpy())
        self.last = path
        return path


class LossCurve(Callback):
    """Writes ``loss.png`` into the run directory from ``metrics.jsonl`` when training ends (the whole history, so a
    resumed run plots every step since step 0)."""

    def __init__(self) -> None:
        self.path: Path | None = None

    def on_fit_end(self, trainer: Trainer, result: TrainResult) -> None:
        metrics = trainer.metrics_path
        if metrics is None or not metrics.exists():
            return
        rows = [r for r in (json.loads(ln) for ln in metrics.read_text().splitlines()) if "loss" in r]
        if rows:
            self.path = save_loss_curve(
                [r["step"] for r in rows], [r["loss"] for r in rows], metrics.parent / "loss.png"
            )
