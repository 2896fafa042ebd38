"""Optimisation and bookkeeping settings of the training loop (``conf/train/*.yaml`` map onto TrainConfig)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .objectives import DSMObjective

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
"""Autocast dtype by ``TrainConfig.precision`` (mixed precision needs a CUDA device)."""


@dataclass
class TrainConfig:
    """Optimisation and bookkeeping settings of :class:`Trainer` (``conf/train/*.yaml`` map onto it).

    Attributes:
        steps: Total optimiser steps (a resumed run continues to this number).
        batch_size: Global batch size (split evenly over DDP ranks).
        lr: Peak AdamW learning rate, reached linearly over ``warmup_steps``.
        weight_decay: AdamW's decoupled weight decay.
        adam_betas: AdamW's (beta1, beta2).
        warmup_steps: Linear warm-up length (0 disables it).
        grad_clip: Clip the global gradient norm to this value (None disables clipping).
        ema_decay: Decay of the weight average used for sampling and evaluation.
        ema_warmup: Ramp the EMA decay as min(d, (1 + n) / (10 + n)).
        precision: ``"fp32"``, or ``"bf16"`` / ``"fp16"`` autocast on CUDA (fp16 with a gradient scaler).
        objective: ``objective(model, x0, generator) -> loss``, e.g. :class:`scoresde.objectives.DSMObjective`.
        log_every: Steps between metrics.jsonl lines (loss averaged over them).
        sample_every: Steps between sample snapshots (0: only at the end).
        checkpoint_every: Steps between checkpoints (one is always written at the end).
        keep_checkpoints: Number of newest checkpoints kept.
        label_dropout: For a label-conditional model, the probability that a training label is replaced by the
            null label (classifier-free guidance, Ho & Salimans 2021; 0.1 is usual); see
            :func:`scoresde.objectives.drop_labels`.
    """

    steps: int = 2000
    batch_size: int = 128
    lr: float = 2e-3
    weight_decay: float = 0.0
    adam_betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 100
    grad_clip: float | None = 1.0
    ema_decay: float = 0.999
    ema_warmup: bool = True
    precision: str = "fp32"
    objective: Callable[..., Tensor] = field(default_factory=DSMObjective)
    log_every: int = 50
    sample_every: int = 0
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    label_dropout: float = 0.0

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "log_every", "checkpoint_every", "keep_checkpoints"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        for name in ("warmup_steps", "sample_every"):
            if int(getattr(self, name)) < 0:
                raise ValueError(f"{name} must be a non-negative integer, got {getattr(self, name)}")
        if not self.lr > 0:
            raise ValueError(f"lr must be positive, got {self.lr}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise ValueError(f"grad_clip must be positive or None, got {self.grad_clip}")
        if not 0 <= self.label_dropout <= 1:
            raise ValueError(f"label_dropout must lie in [0, 1], got {self.label_dropout}")
        if self.precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {sorted(PRECISIONS)}, got {self.precision!r}")
        self.adam_betas = tuple(self.adam_betas)

    def lr_at(self, step: int) -> float:
        """Learning rate for optimiser step ``step`` (1-based): linear warm-up, then constant."""
        return self.lr * min(1.0, step / self.warmup_steps) if self.warmup_steps else self.lr
