"""The order in which training examples are visited: shuffled epochs, sharded over DDP ranks, resumable."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor


class BatchOrder:
    """Global batches of ``batch_size`` indices drawn without replacement from a fresh permutation per epoch.

    Every rank draws the same permutation (same seed) and takes every ``world_size``-th index of each global
    batch, so the ranks see disjoint shards whose union is the single-process batch. The last incomplete
    global batch of an epoch is dropped.

    Args:
        num_examples: N, the size of the training set.
        batch_size: Global batch size; must divide by ``world_size`` and not exceed N.
        rank: This process's rank.
        world_size: Number of processes.
        seed: Seed of the permutation generator (``self.generator``, CPU).
    """

    def __init__(self, num_examples: int, batch_size: int, *, rank: int = 0, world_size: int = 1, seed: int = 0):
        if batch_size > num_examples:
            raise ValueError(
                f"batch_size ({batch_size}) must not exceed the number of training examples ({num_examples})"
            )
        if batch_size % world_size:
            raise ValueError(f"batch_size ({batch_size}) must be divisible by the number of processes ({world_size})")
        self.num_examples, self.batch_size = num_examples, batch_size
        self.rank, self.world_size = rank, world_size
        self.generator = torch.Generator().manual_seed(seed)
        self.epoch, self.position = 0, 0
        self.permutation = torch.randperm(num_examples, generator=self.generator)

    def next_indices(self) -> Tensor:
        """This rank's indices of the next global batch, shape (batch_size // world_size,)."""
        if self.position + self.batch_size > self.num_examples:
            self.permutation = torch.randperm(self.num_examples, generator=self.generator)
            self.epoch, self.position = self.epoch + 1, 0
        batch = self.permutation[self.position : self.position + self.batch_size]
        self.position += self.batch_size
        return batch[self.rank :: self.world_size]

    def state_dict(self) -> dict[str, Any]:
        return {"permutation": self.permutation.clone(), "epoch": self.epoch, "position": self.position}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if state["permutation"].numel() != self.num_examples:
            raise ValueError(
                f"the saved data order covers {state['permutation'].numel()} examples, the data has {self.num_examples}"
            )
        self.permutation = state["permutation"].clone()
        self.epoch, self.position = int(state["epoch"]), int(state["position"])
