"""Time (noise-level) and class-label embeddings: the network's conditioning inputs -> feature vectors.

Both embeddings take the time input the :class:`~scoresde.models.ScoreModel` wrapper passes to the
network: a (B,) float tensor in [0, num_levels - 1] (by default [0, 999], the DDPM index range), for
continuous and discrete time alike.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .._validation import check_choice, check_int, check_number, check_positive, is_int


def _check_dim(dim: int) -> int:
    if not is_int(dim) or dim < 2 or dim % 2:
        raise ValueError(f"dim (embedding size) must be a positive even integer, got {dim!r}")
    return dim


class SinusoidalEmbedding(nn.Module):
    """Transformer-style sinusoidal features (Vaswani et al. 2017; DDPM, Ho et al. 2020, appendix B).

    emb(t) = [sin(t w_0), ..., sin(t w_{h-1}), cos(t w_0), ..., cos(t w_{h-1})],
    w_k = max_period^(-k / h), h = dim / 2: periods from 2 pi up to 2 pi max_period, so times a unit apart are
    told apart by the fast features and the whole range by the slow ones.

    Args:
        dim: Output size (even).
        max_period: Longest period / (2 pi); 10,000 suits inputs in [0, 1000].
    """

    def __init__(self, dim: int, max_period: float = 10_000.0) -> None:
        super().__init__()
        self.dim = _check_dim(dim)
        check_number("max_period", max_period, 1, math.inf, "()")
        half = dim // 2
        freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32) / half)
        self.register_buffer("freqs", freqs, persistent=False)

    def forward(self, t: Tensor) -> Tensor:
        """(B,) -> (B, dim)."""
        arg = t.to(self.freqs)[:, None] * self.freqs[None, :]
        return torch.cat([arg.sin(), arg.cos()], dim=1)


class GaussianFourierEmbedding(nn.Module):
    """Random Fourier features (Tancik et al. 2020), as in NCSN++ (Song et al. 2021, appendix H.1).

    emb(t) = [sin(2 pi w t'), cos(2 pi w t')], w ~ N(0, scale^2) fixed at construction (a buffer, so it is
    saved in checkpoints and never trained), t' = t * input_scale.

    Args:
        dim: Output size (even).
        scale: Standard deviation of the frequencies (16 in NCSN++, which feeds log sigma, a range of ~10).
        input_scale: Multiplies the input first; the default 1/1000 maps the wrapper's [0, 999] to [0, 1].
        seed: Seed of the frequencies, so two constructions give the same network.
    """

    def __init__(self, dim: int, scale: float = 16.0, input_scale: float = 1e-3, seed: int = 0) -> None:
        super().__init__()
        self.dim = _check_dim(dim)
        check_positive("scale", scale)
        self.input_scale = float(input_scale)
        g = torch.Generator().manual_seed(seed)
        self.register_buffer("W", torch.randn(dim // 2, generator=g) * scale)

    def forward(self, t: Tensor) -> Tensor:
        """(B,) -> (B, dim)."""
        arg = 2 * math.pi * (t.to(self.W) * self.input_scale)[:, None] * self.W[None, :]
        return torch.cat([arg.sin(), arg.cos()], dim=1)


TIME_EMBEDDINGS: dict[str, type[nn.Module]] = {
    "sinusoidal": SinusoidalEmbedding,
    "fourier": GaussianFourierEmbedding,
}
"""Names accepted by the networks' ``time_embedding`` argument."""


def time_embedding(name: str, dim: int) -> nn.Module:
    """Build the embedding called ``name`` (a key of :data:`TIME_EMBEDDINGS`) with output size ``dim``."""
    check_choice("time_embedding", name, TIME_EMBEDDINGS)
    return TIME_EMBEDDINGS[name](dim)


class TimeMLP(nn.Module):
    """Embedding followed by Linear-SiLU-Linear: the conditioning vector every block of a network receives.

    Args:
        embedding: Name of the features (see :data:`TIME_EMBEDDINGS`).
        embed_dim: Size of the raw features.
        out_dim: Size of the conditioning vector.
    """

    def __init__(self, embedding: str, embed_dim: int, out_dim: int) -> None:
        super().__init__()
        self.features = time_embedding(embedding, embed_dim)
        self.mlp = nn.Sequential(nn.Linear(embed_dim, out_dim), nn.SiLU(), nn.Linear(out_dim, out_dim))

    def forward(self, t: Tensor) -> Tensor:
        """(B,) -> (B, out_dim)."""
        return self.mlp(self.features(t))


class LabelEmbedding(nn.Module):
    """Class labels -> learned vectors, with one more "null" label for the unconditional score.

    Labels 0..K-1 are the classes and K = ``num_classes`` is the null label (Ho & Salimans 2021: one network, trained
    with some labels replaced by the null one, gives both s(x, t, y) and s(x, t, null)); ``y=None`` means the null
    label for the whole batch. The table starts at zero, so a fresh label-conditional network equals its
    unconditional counterpart.

    Args:
        num_classes: Number of classes K.
        dim: Size of the vectors (that of the time conditioning vector they are added to).
    """

    def __init__(self, num_classes: int, dim: int) -> None:
        super().__init__()
        self.num_classes = check_int("num_classes", num_classes)
        self.table = nn.Embedding(num_classes + 1, dim)
        nn.init.zeros_(self.table.weight)

    def forward(self, y: Tensor | None, batch: int) -> Tensor:
        """y: LongTensor (B,) of labels in 0..K (K: null), or None (all null) -> (B, dim).

        Labels are range-checked on the CPU only (reading them on an accelerator would synchronise every call).
        """
        if y is None:
            y = torch.full((batch,), self.num_classes, dtype=torch.long, device=self.table.weight.device)
        elif not isinstance(y, Tensor) or y.shape != (batch,) or y.is_floating_point():
            shape = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
            raise ValueError(f"y must be an integer tensor of shape ({batch},), got {shape}")
        elif y.device.type == "cpu" and y.numel() and (int(y.min()) < 0 or int(y.max()) > self.num_classes):
            raise ValueError(f"labels must lie in 0..{self.num_classes} ({self.num_classes}: the null label)")
        return self.table(y.long())


def add_label(emb: Tensor, label: LabelEmbedding | None, y: Tensor | None, batch: int) -> Tensor:
    """The conditioning vector ``emb`` (B, dim) plus the embedding of labels y; an unconditional network
    (``label`` None) refuses labels."""
    if label is None:
        if y is not None:
            raise ValueError("this network was built without num_classes: it takes no labels y")
        return emb
    return emb + label(y, batch)
