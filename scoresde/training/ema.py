"""Exponential moving average of model weights (Polyak averaging), used for sampling and evaluation."""

from __future__ import annotations

import copy

import torch
from torch import nn


class EMA:
    """theta_ema <- d theta_ema + (1 - d) theta after every optimiser step (Song et al. 2021, app. H: d = 0.9999).

    With ``warmup=True`` the rate is d_n = min(d, (1 + n) / (10 + n)) at update n, so the average is not
    dominated by the random initial weights in short runs. Buffers (e.g. normalisation statistics) are
    copied, not averaged.

    Args:
        model: The trained module; a deep copy of it holds the averaged weights (``self.model``).
        decay: d in [0, 1); 0 makes the copy follow the model exactly.
        warmup: Use the (1 + n) / (10 + n) ramp.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, *, warmup: bool = True) -> None:
        if not 0.0 <= float(decay) < 1.0:
            raise ValueError(f"decay must lie in [0, 1), got {decay}")
        self.decay = float(decay)
        self.warmup = bool(warmup)
        self.num_updates = 0
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    def rate(self) -> float:
        """The decay d_n used by the next update."""
        if not self.warmup:
            return self.decay
        n = self.num_updates
        return min(self.decay, (1 + n) / (10 + n))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the averaged weights towards ``model``'s (same architecture as at construction)."""
        d = self.rate()
        for avg, p in zip(self.model.parameters(), model.parameters(), strict=True):
            avg.lerp_(p.detach(), 1.0 - d)
        for avg, b in zip(self.model.buffers(), model.buffers(), strict=True):
            avg.copy_(b)
        self.num_updates += 1

    def state_dict(self) -> dict:
        """Averaged weights and the update counter (plain tensors and ints)."""
        return {"model": self.model.state_dict(), "num_updates": self.num_updates, "decay": self.decay}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.num_updates = int(state["num_updates"])
