"""Colorization (Song et al. 2021, sec. 5 and Appendix I.3): sample the colours of a grey-scale image.

The paper decouples the colour channels with an orthogonal linear map: in the basis

    U = [[1/sqrt(3), -2/sqrt(6),          0],
         [1/sqrt(3),  1/sqrt(6),  1/sqrt(2)],
         [1/sqrt(3),  1/sqrt(6), -1/sqrt(2)]]      (z[:, j] = sum_c x[:, c] U[c, j], per pixel)

the first channel is sqrt(3) times the grey level (the mean of R, G, B) and the other two are orthogonal to it.
The grey channel is observed and the other two are sampled: inpainting in the rotated basis, with every method of
:func:`scoresde.inpaint` (the paper's replacement method, RePaint, the particle filter).
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from .._utils import check_finite
from ..sde import SDE, ScoreFn
from ..solvers.base import SampleInfo
from .inpainting import METHODS
from .methods import ConditionalMethod, make_method, sample_conditional
from .observation import Observation

COLOR_BASIS = torch.tensor(
    [
        [1 / math.sqrt(3), -2 / math.sqrt(6), 0.0],
        [1 / math.sqrt(3), 1 / math.sqrt(6), 1 / math.sqrt(2)],
        [1 / math.sqrt(3), 1 / math.sqrt(6), -1 / math.sqrt(2)],
    ],
    dtype=torch.float64,
)
"""The paper's orthogonal colour basis U (3, 3); its first column is the grey direction (1, 1, 1) / sqrt(3)."""


def grey_observation(event_shape: tuple[int, ...]) -> Observation:
    """The grey channel of :data:`COLOR_BASIS` observed, for images of shape (3, H, W)."""
    if len(event_shape) < 2 or event_shape[0] != 3:
        raise ValueError(f"colorization needs 3-channel images (3, H, W), got event shape {tuple(event_shape)}")
    mask = torch.zeros(event_shape, dtype=torch.bool)
    mask[0] = True
    return Observation(mask, basis=COLOR_BASIS)


def to_grey(x: Tensor) -> Tensor:
    """The grey level, the mean of the colour channels: (B, 3, H, W) -> (B, 1, H, W)."""
    return x.mean(1, keepdim=True)


def colorize(
    sde: SDE,
    score_fn: ScoreFn,
    grey: Tensor,
    *,
    method: str | ConditionalMethod = "replacement",
    generator: torch.Generator | None = None,
    nfe: int | None = None,
    steps: int | None = None,
    eps: float = 1e-3,
    denoise: bool = True,
    progress: bool = False,
    **options: Any,
) -> tuple[Tensor, SampleInfo]:
    """Sample colour images whose grey level (mean of R, G, B) is ``grey``, from a 3-channel score model.

    Args:
        sde: The forward SDE the score belongs to.
        score_fn: Score of colour images, ``score_fn(x, t)`` with x of shape (B, 3, H, W).
        grey: Grey-scale images, shape (B, 1, H, W), in the model's data range (see :func:`to_grey`).
        method, generator, nfe, steps, eps, denoise, progress, **options: As for :func:`scoresde.inpaint`.

    Returns:
        Colour samples (B, 3, H, W) whose grey level equals ``grey``, and a SampleInfo.

    Raises:
        ValueError: for a grey image that is not (B, 1, H, W) or not finite, and the errors of ``inpaint``.
    """
    if not isinstance(grey, Tensor) or grey.ndim != 4 or grey.shape[1] != 1:
        got = tuple(grey.shape) if isinstance(grey, Tensor) else type(grey).__name__
        raise ValueError(f"grey must be a tensor of shape (B, 1, H, W), got {got}")
    check_finite(grey, "grey")
    observation = grey_observation((3, *grey.shape[2:]))
    y = grey.expand(-1, 3, -1, -1)  # its grey coordinate is sqrt(3) grey, the others 0 (unused)
    method = make_method(method, METHODS, **options)
    return sample_conditional(
        sde, score_fn, observation, y, method, steps=steps, nfe=nfe, eps=eps, denoise=denoise,
        generator=generator, progress=progress,
    )  # fmt: skip
