"""A time-conditioned residual MLP for low-dimensional data (2-D toy sets, the oracle Gaussians)."""

from __future__ import annotations

import math

from torch import Tensor, nn

from .._validation import check_int
from .embeddings import LabelEmbedding, TimeMLP, add_label


class ResidualBlock(nn.Module):
    """x + W2 SiLU(LN(W1 SiLU(LN(x)) + A emb)): a pre-norm residual block conditioned on the time embedding.

    Args:
        width: Feature size.
        emb_dim: Size of the time conditioning vector.
        dropout: Dropout probability before the second linear layer.
    """

    def __init__(self, width: int, emb_dim: int, dropout: float = 0.0) -> None:
        super().__init__()
        self.norm1 = nn.LayerNorm(width)
        self.fc1 = nn.Linear(width, width)
        self.emb = nn.Linear(emb_dim, width)
        self.norm2 = nn.LayerNorm(width)
        self.dropout = nn.Dropout(dropout)
        self.fc2 = nn.Linear(width, width)
        self.act = nn.SiLU()

    def forward(self, h: Tensor, emb: Tensor) -> Tensor:
        """h: (B, width), emb: (B, emb_dim) -> (B, width)."""
        out = self.fc1(self.act(self.norm1(h))) + self.emb(self.act(emb))
        out = self.fc2(self.dropout(self.act(self.norm2(out))))
        return h + out


class MLP(nn.Module):
    """Residual MLP score network ``net(x, time_input, y=None)`` for data of shape (B, *event_shape), flattened inside.

    Args:
        event_shape: Shape of one sample, e.g. (2,); any shape is flattened to D entries.
        width: Hidden size.
        num_blocks: Number of residual blocks.
        time_embedding: ``"sinusoidal"`` or ``"fourier"`` (see :mod:`scoresde.models.embeddings`).
        embed_dim: Size of the raw time features; the conditioning vector has size ``width``.
        dropout: Dropout probability inside the blocks.
        num_classes: With K classes the network also takes a label y in 0..K (K: null), embedded by
            :class:`~scoresde.models.embeddings.LabelEmbedding` and added to the time conditioning vector;
            None (default): unconditional, no label input.
    """

    def __init__(
        self,
        event_shape: tuple[int, ...],
        width: int = 128,
        num_blocks: int = 3,
        time_embedding: str = "sinusoidal",
        embed_dim: int = 64,
        dropout: float = 0.0,
        num_classes: int | None = None,
    ) -> None:
        super().__init__()
        self.event_shape = check_event_shape(event_shape)
        self.num_classes = num_classes
        check_int("width", width)
        check_int("num_blocks", num_blocks)
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        dim = math.prod(self.event_shape)
        self.time = TimeMLP(time_embedding, embed_dim, width)
        self.label = LabelEmbedding(num_classes, width) if num_classes is not None else None
        self.inp = nn.Linear(dim, width)
        self.blocks = nn.ModuleList(ResidualBlock(width, width, dropout) for _ in range(num_blocks))
        self.out = nn.Sequential(nn.LayerNorm(width), nn.SiLU(), nn.Linear(width, dim))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def forward(self, x: Tensor, time_input: Tensor, y: Tensor | None = None) -> Tensor:
        """x: (B, *event_shape), time_input: (B,), y: labels (B,) or None -> (B, *event_shape)."""
        if tuple(x.shape[1:]) != self.event_shape:
            raise ValueError(f"x must have shape (B, *{self.event_shape}), got {tuple(x.shape)}")
        emb = add_label(self.time(time_input), self.label, y, x.shape[0])
        h = self.inp(x.reshape(x.shape[0], -1))
        for block in self.blocks:
            h = block(h, emb)
        return self.out(h).reshape(x.shape)


def check_event_shape(event_shape) -> tuple[int, ...]:
    try:
        shape = tuple(int(n) for n in event_shape)
    except TypeError:
        raise TypeError(f"event_shape must be a tuple of ints, got {event_shape!r}") from None
    if not shape or any(n <= 0 for n in shape):
        raise ValueError(f"event_shape must be a non-empty tuple of positive sizes, got {event_shape!r}")
    return shape
