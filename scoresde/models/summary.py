"""A network's size and speed: the parameter count and a measured forward-pass time (``summarize``)."""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class ModelSummary:
    """Size and speed of a network.

    Attributes:
        num_parameters: Trainable parameters.
        batch_size: Batch of the timed forward passes.
        forward_ms: Median wall time of one forward pass without gradients, in milliseconds.
        threads: ``torch.get_num_threads()`` during the measurement.
        device: Where it ran.
    """

    num_parameters: int
    batch_size: int
    forward_ms: float
    threads: int
    device: str

    def __str__(self) -> str:
        return (
            f"{self.num_parameters:,} parameters; forward pass {self.forward_ms:.1f} ms at batch {self.batch_size} "
            f"({self.device}, {self.threads} thread{'s' if self.threads != 1 else ''})"
        )


def count_parameters(module: nn.Module, trainable_only: bool = True) -> int:
    """Number of (trainable, by default) parameters of ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad or not trainable_only)


@torch.no_grad()
def summarize(
    net: nn.Module, event_shape: tuple[int, ...], *, batch_size: int = 128, repeats: int = 3, warmup: int = 1
) -> ModelSummary:
    """Count the parameters of ``net`` and time ``net(x, time_input)`` on random input of shape (batch, *event_shape).

    The network is put in eval mode for the measurement and restored afterwards. On CUDA the timing synchronises.
    """
    if repeats < 1 or warmup < 0 or batch_size < 1:
        raise ValueError("repeats and batch_size must be >= 1 and warmup >= 0")
    param = next(net.parameters(), None)
    device = param.device if param is not None else torch.device("cpu")
    dtype = param.dtype if param is not None else torch.get_default_dtype()
    x = torch.randn(batch_size, *event_shape, device=device, dtype=dtype)
    c = torch.linspace(0, 999, batch_size, device=device, dtype=dtype)
    was_training = net.training
    net.eval()
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    times = []
    try:
        for i in range(warmup + repeats):
            sync()
            start = time.perf_counter()
            net(x, c)
            sync()
            if i >= warmup:
                times.append(time.perf_counter() - start)
    finally:
        net.train(was_training)
    times.sort()
    return ModelSummary(
        num_parameters=count_parameters(net),
        batch_size=batch_size,
        forward_ms=1000 * times[len(times) // 2],
        threads=torch.get_num_threads(),
        device=str(device),
    )
