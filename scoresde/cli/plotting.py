"""Figures written during and after training (matplotlib, PNG files).

Every function takes tensors or arrays and a path, writes one PNG and returns the path. They draw on
``matplotlib.figure.Figure`` objects, never through pyplot: no window opens, no backend is chosen and no global
figure state is touched, so they run on headless machines, inside DDP workers and beside a notebook's own figures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from matplotlib.figure import Figure
from torch import Tensor


def _numpy(x: Tensor | np.ndarray) -> np.ndarray:
    if isinstance(x, Tensor):
        return x.detach().to("cpu", torch.float32).numpy()
    return np.asarray(x, dtype=np.float32)


def image_grid(images: Tensor | np.ndarray, data_range: tuple[float, float] = (-1.0, 1.0), nrow: int | None = None):
    """Tile images (B, C, H, W) into one (rows*H + pad, cols*W + pad, C) array in [0, 1] with 1-pixel gaps.

    Values are mapped from ``data_range`` to [0, 1] and clipped. ``nrow`` is the number of columns
    (default: the ceiling of sqrt(B)).
    """
    x = _numpy(images)
    if x.ndim != 4:
        raise ValueError(f"images must have shape (B, C, H, W), got {x.shape}")
    lo, hi = data_range
    if not hi > lo:
        raise ValueError(f"data_range must be (lo, hi) with hi > lo, got {data_range}")
    x = np.clip((x - lo) / (hi - lo), 0.0, 1.0)
    b, c, h, w = x.shape
    cols = nrow or math.ceil(math.sqrt(b))
    rows = math.ceil(b / cols)
    grid = np.ones((rows * (h + 1) + 1, cols * (w + 1) + 1, c), dtype=np.float32)
    for k in range(b):
        r, q = divmod(k, cols)
        grid[1 + r * (h + 1) : 1 + r * (h + 1) + h, 1 + q * (w + 1) : 1 + q * (w + 1) + w] = x[k].transpose(1, 2, 0)
    return grid


def save_image_grid(
    images: Tensor | np.ndarray,
    path: str | Path,
    *,
    data_range: tuple[float, float] = (-1.0, 1.0),
    nrow: int | None = None,
    title: str | None = None,
    scale: int = 4,
) -> Path:
    """Write a grid of images (B, C, H, W) as a PNG; grey-scale when C == 1.

    Args:
        images: Samples in the model range, shape (B, C, H, W).
        path: Output file.
        data_range: The (lo, hi) range that maps to black and white.
        nrow: Images per row (default about sqrt(B)).
        title: Optional title above the grid.
        scale: Screen pixels per image pixel (small images such as 8x8 digits need a large value).
    """
    grid = image_grid(images, data_range, nrow)
    h, w = grid.shape[:2]
    dpi = 100
    extra = 0.3 if title else 0.0
    fig = Figure(figsize=(w * scale / dpi, h * scale / dpi + extra), dpi=dpi)
    ax = fig.add_axes((0, 0, 1, h * scale / dpi / (h * scale / dpi + extra)))
    cmap = "gray" if grid.shape[2] == 1 else None
    ax.imshow(grid[..., 0] if grid.shape[2] == 1 else grid, cmap=cmap, vmin=0.0, vmax=1.0, interpolation="nearest")
    ax.set_axis_off()
    if title:
        fig.suptitle(title, fontsize=8, y=1 - 0.05 * extra)
    fig.savefig(path)
    return Path(path)


def save_loss_curve(
    steps: Sequence[int], losses: Sequence[float], path: str | Path, *, title: str = "training loss"
) -> Path:
    """Plot loss against step (log-scaled y when every loss is positive) with a running mean."""
    steps = np.asarray(steps, dtype=np.float64)
    losses = np.asarray(losses, dtype=np.float64)
    if steps.shape != losses.shape or steps.ndim != 1:
        raise ValueError(f"steps and losses must be 1-D of the same length, got {steps.shape} and {losses.shape}")
    fig = Figure(figsize=(6, 4), dpi=100)
    ax = fig.subplots()
    ax.plot(steps, losses, lw=0.8, alpha=0.5, label="loss")
    if losses.size >= 10:
        k = max(losses.size // 20, 2)
        smooth = np.convolve(losses, np.ones(k) / k, mode="valid")
        ax.plot(steps[k - 1 :], smooth, lw=1.5, label=f"running mean ({k})")
    if losses.size and np.all(losses > 0):
        ax.set_yscale("log")
    ax.set(xlabel="step", ylabel="loss", title=title)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    return Path(path)


def save_scatter(
    samples: Tensor | np.ndarray,
    path: str | Path,
    *,
    reference: Tensor | np.ndarray | None = None,
    title: str | None = None,
) -> Path:
    """Scatter 2-D samples (B, 2) over optional reference data (N, 2), with equal axes."""
    s = _numpy(samples)
    if s.ndim != 2 or s.shape[1] != 2:
        raise ValueError(f"samples must have shape (B, 2), got {s.shape}")
    fig = Figure(figsize=(5, 5), dpi=100)
    ax = fig.subplots()
    if reference is not None:
        r = _numpy(reference)
        ax.scatter(r[:, 0], r[:, 1], s=2, c="lightgrey", label=f"data ({len(r)})")
    ax.scatter(s[:, 0], s[:, 1], s=3, c="tab:blue", label=f"samples ({len(s)})")
    ax.set_aspect("equal")
    ax.legend(loc="upper right", fontsize=8)
    if title:
        ax.set_title(title)
    fig.tight_layout()
    fig.savefig(path)
    return Path(path)
