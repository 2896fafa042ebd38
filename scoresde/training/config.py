"""Optimisation and bookkeeping settings of the training loop (``conf/train/*.yaml`` map onto TrainConfig)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .._validation import check_choice, check_int, is_real
from .objectives import DSMObjective

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
"""Autocast dtype by ``TrainConfig.precision`` (mixed precision needs a CUDA device)."""


def _check_number(name: str, value: object, *, positive: bool, what: str | None = None) -> None:
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value)
    if not ok or (value <= 0 if positive else value < 0):
        raise ValueError(f"{name} must be {what or ('a positive' if positive else 'a non-negative') + ' number'}, "
                         f"got {value!r}")  # fmt: skip


def _check_unit(name: str, value: object) -> None:
    if not is_real(value) or not 0 <= value < 1:
        raise ValueError(f"{name} must lie in [0, 1), got {value!r}")


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
        ema_halflife: EDM's EMA instead: a half-life in training images (:class:`~scoresde.training.ema.HalfLifeEMA`);
            None keeps ``ema_decay``.
        ema_rampup: The half-life's ramp-up ratio in [0, 1) (EDM: 0.05).
        ema_sigma_rel: EDM2's power-function EMA instead, of this relative width in (0, 0.28)
            (:class:`~scoresde.training.ema.PowerEMA`); every checkpoint is then a snapshot for post-hoc
            reconstruction (:func:`~scoresde.training.ema.posthoc_average`).
        precision: ``"fp32"``, or ``"bf16"`` / ``"fp16"`` autocast on CUDA (fp16 with a gradient scaler).
        objective: ``objective(model, x0, generator) -> loss``, e.g. :class:`scoresde.training.objectives.DSMObjective`.
        log_every: Steps between metrics.jsonl lines (loss averaged over them).
        sample_every: Steps between sample snapshots (0: only at the end).
        checkpoint_every: Steps between checkpoints (one is always written at the end).
        keep_checkpoints: Number of newest checkpoints kept.
        label_dropout: For a label-conditional model, the probability that a training label is replaced by the
            null label (classifier-free guidance, Ho & Salimans 2021; 0.1 is usual); see
            :func:`scoresde.training.objectives.drop_labels`.
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
    ema_halflife: float | None = None
    ema_rampup: float = 0.05
    ema_sigma_rel: float | None = None
    precision: str = "fp32"
    objective: Callable[..., Tensor] = field(default_factory=DSMObjective)
    log_every: int = 50
    sample_every: int = 0
    checkpoint_every: int = 1000
    keep_checkpoints: int = 3
    label_dropout: float = 0.0

    def __post_init__(self) -> None:
        for name in ("steps", "batch_size", "log_every", "checkpoint_every", "keep_checkpoints"):
            check_int(name, getattr(self, name), 1)
        for name in ("warmup_steps", "sample_every"):
            check_int(name, getattr(self, name), 0)
        _check_number("lr", self.lr, positive=True)
        _check_number("weight_decay", self.weight_decay, positive=False)
        if self.grad_clip is not None:
            _check_number("grad_clip", self.grad_clip, positive=True, what="a positive number or None")
        _check_unit("ema_decay", self.ema_decay)
        betas = self.adam_betas
        if isinstance(betas, (str, bytes)) or not hasattr(betas, "__len__") or len(betas) != 2:
            raise ValueError(f"adam_betas must be two numbers in [0, 1), got {betas!r}")
        for beta in betas:
            _check_unit("adam_betas", beta)
        if self.ema_halflife is not None:
            _check_number("ema_halflife", self.ema_halflife, positive=True, what="a positive number of images or null")
        _check_unit("ema_rampup", self.ema_rampup)
        if self.ema_sigma_rel is not None:
            ok = not isinstance(self.ema_sigma_rel, bool) and isinstance(self.ema_sigma_rel, (int, float))
            if not ok or not 0 < self.ema_sigma_rel < 0.28:
                raise ValueError(f"ema_sigma_rel must lie in (0, 0.28) or be null, got {self.ema_sigma_rel!r}")
            if self.ema_halflife is not None:
                raise ValueError("set at most one of ema_sigma_rel (EDM2 power EMA) and ema_halflife (EDM's)")
        if not isinstance(self.ema_warmup, bool):
            raise ValueError(f"ema_warmup must be true or false, got {self.ema_warmup!r}")
        _check_number("label_dropout", self.label_dropout, positive=False)
        if not 0 <= self.label_dropout <= 1:
            raise ValueError(f"label_dropout must lie in [0, 1], got {self.label_dropout}")
        check_choice("precision", self.precision, PRECISIONS)
        if not callable(self.objective):
            raise TypeError(f"objective must be callable as objective(model, x0, generator), got {self.objective!r}")
        self.adam_betas = tuple(betas)

    def lr_at(self, step: int) -> float:
        """Learning rate for optimiser step ``step`` (1-based): linear warm-up, then constant."""
        return self.lr * min(1.0, step / self.warmup_steps) if self.warmup_steps else self.lr
