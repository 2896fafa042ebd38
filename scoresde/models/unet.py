"""A U-Net of the DDPM++ / NCSN++ family (Ho et al. 2020, appendix B; Song et al. 2021, appendix H).

Layout: a 3x3 input conv; per level a stack of residual blocks (GroupNorm-SiLU-conv, the time embedding added
after the first conv, dropout, a zero-initialised second conv, skip rescaled by 1/sqrt 2), optional
self-attention after each block, and a strided 3x3 conv down to the next level; a middle of
block-attention-block; the mirrored up path whose blocks take the matching down activations concatenated
(num_res_blocks + 1 per level), with nearest-neighbour upsampling + conv; GroupNorm-SiLU-conv out, zero-initialised
so a fresh network outputs 0.

Sizes. With L = len(ch_mult) levels the feature maps at level l have size ceil(H / 2^(L-1)) 2^(L-1) / 2^l:
an input whose sides are not multiples of 2^(L-1) is zero-padded at the bottom/right to the next multiple and
the output is cropped back. So 8x8 with ch_mult (1, 2) runs at 8, 4; 28x28 with (1, 2, 2) at 28, 14, 7 (no
padding); 28x28 with four levels is padded to 32 and runs at 32, 16, 8, 4; 32x32 with (1, 2, 2, 2) at 32, 16, 8, 4.
Attention is placed by level index (``attn_levels``), so one config works for any input size.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._utils import append_dims
from .._validation import check_int
from .embeddings import LabelEmbedding, TimeMLP, add_label
from .mlp import check_event_shape


def group_norm(channels: int, groups: int) -> nn.GroupNorm:
    """GroupNorm with gcd(groups, channels) groups, so any channel count works."""
    return nn.GroupNorm(math.gcd(groups, channels), channels)


def _zero(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


class ResBlock(nn.Module):
    """h = conv2(drop(SiLU(GN(conv1(SiLU(GN(x))) + W emb)))); out = (skip(x) + h) * r, r = 1/sqrt 2 or 1."""

    def __init__(self, in_ch: int, out_ch: int, emb_dim: int, dropout: float, groups: int, skip_rescale: bool):
        super().__init__()
        self.norm1 = group_norm(in_ch, groups)
        self.conv1 = nn.Conv2d(in_ch, out_ch, 3, padding=1)
        self.emb = nn.Linear(emb_dim, out_ch)
        self.norm2 = group_norm(out_ch, groups)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = _zero(nn.Conv2d(out_ch, out_ch, 3, padding=1))
        self.skip = nn.Identity() if in_ch == out_ch else nn.Conv2d(in_ch, out_ch, 1)
        self.rescale = 1 / math.sqrt(2) if skip_rescale else 1.0
        self.act = nn.SiLU()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        """x: (B, in_ch, H, W), emb: (B, emb_dim) -> (B, out_ch, H, W)."""
        h = self.conv1(self.act(self.norm1(x)))
        h = h + append_dims(self.emb(self.act(emb)), h.ndim)
        h = self.conv2(self.dropout(self.act(self.norm2(h))))
        return (self.skip(x) + h) * self.rescale


class SelfAttention(nn.Module):
    """Multi-head self-attention over the H*W positions (DDPM's AttnBlock), residual and zero-initialised."""

    def __init__(self, channels: int, groups: int, num_heads: int, skip_rescale: bool):
        super().__init__()
        if channels % num_heads:
            raise ValueError(f"num_heads ({num_heads}) must divide the channel count {channels}")
        self.num_heads = num_heads
        self.norm = group_norm(channels, groups)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = _zero(nn.Conv2d(channels, channels, 1))
        self.rescale = 1 / math.sqrt(2) if skip_rescale else 1.0

    def forward(self, x: Tensor) -> Tensor:
        """(B, C, H, W) -> (B, C, H, W)."""
        B, C, H, W = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(B, 3, self.num_heads, C // self.num_heads, H * W).unbind(1)
        out = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        # contiguous: the transposed view has channels-last strides, for which cuDNN returns proj's weight gradient
        # channels-last too, and DDP warns "Grad strides do not match bucket view strides"
        return (x + self.proj(out.transpose(-1, -2).reshape(B, C, H, W).contiguous())) * self.rescale


class Level(nn.Module):
    """The blocks of one resolution, each optionally followed by attention, then a resampling layer (or none)."""

    def __init__(self, blocks: list[ResBlock], attention: list[nn.Module], resample: nn.Module | None):
        super().__init__()
        self.blocks = nn.ModuleList(blocks)
        self.attention = nn.ModuleList(attention)
        self.resample = resample


class UNet(nn.Module):
    """Time-conditioned U-Net score network ``net(x, time_input, y=None)`` for images of shape (B, C, H, W).

    Args:
        event_shape: (C, H, W) of one image.
        channels: Base channel count; level l has ``channels * ch_mult[l]`` channels.
        ch_mult: Channel multiplier per level; L = len(ch_mult) levels, L - 1 downsamplings.
        num_res_blocks: Residual blocks per level on the way down (one more on the way up).
        attn_levels: Level indices (0 = full resolution) whose blocks are followed by self-attention; the middle
            always has one attention layer.
        dropout: Dropout probability in the residual blocks.
        time_embedding: ``"sinusoidal"`` (DDPM++) or ``"fourier"`` (NCSN++).
        norm_groups: GroupNorm groups (gcd with the channel count is used).
        num_heads: Attention heads.
        skip_rescale: Multiply residual sums by 1/sqrt 2 (DDPM++/NCSN++).
        num_classes: With K classes the network also takes a label y in 0..K (K: null), embedded by
            :class:`~scoresde.models.embeddings.LabelEmbedding` and added to the time embedding every block receives
            (as in ADM, Dhariwal & Nichol 2021); None (default): unconditional, no label input.
    """

    def __init__(
        self,
        event_shape: tuple[int, int, int],
        channels: int = 16,
        ch_mult: tuple[int, ...] = (1, 2, 2),
        num_res_blocks: int = 1,
        attn_levels: tuple[int, ...] = (1,),
        dropout: float = 0.0,
        time_embedding: str = "sinusoidal",
        norm_groups: int = 8,
        num_heads: int = 1,
        skip_rescale: bool = True,
        num_classes: int | None = None,
    ) -> None:
        super().__init__()
        self.event_shape = check_event_shape(event_shape)
        self.num_classes = num_classes
        if len(self.event_shape) != 3:
            raise ValueError(f"event_shape must be (C, H, W) for the UNet, got {event_shape!r}")
        ch_mult = tuple(int(m) for m in ch_mult)
        attn_levels = tuple(int(a) for a in attn_levels)
        for name, value in (("channels", channels), ("num_res_blocks", num_res_blocks), ("num_heads", num_heads)):
            check_int(name, value)
        if not ch_mult or min(ch_mult) < 1:
            raise ValueError(f"ch_mult must be a non-empty sequence of positive integers, got {ch_mult!r}")
        if any(a not in range(len(ch_mult)) for a in attn_levels):
            raise ValueError(f"attn_levels must be level indices in 0..{len(ch_mult) - 1}, got {attn_levels!r}")
        if not 0 <= dropout < 1:
            raise ValueError(f"dropout must lie in [0, 1), got {dropout}")
        C, H, W = self.event_shape
        self.multiple = 2 ** (len(ch_mult) - 1)
        if min(H, W) < self.multiple:
            raise ValueError(f"{len(ch_mult)} levels halve the image {len(ch_mult) - 1} times: too many for {H}x{W}")
        self.attn_levels = attn_levels
        emb_dim = 4 * channels
        block = lambda i, o: ResBlock(i, o, emb_dim, dropout, norm_groups, skip_rescale)  # noqa: E731
        attn = lambda c, on: SelfAttention(c, norm_groups, num_heads, skip_rescale) if on else nn.Identity()  # noqa: E731

        self.time = TimeMLP(time_embedding, channels, emb_dim)
        self.label = LabelEmbedding(num_classes, emb_dim) if num_classes is not None else None
        self.inp = nn.Conv2d(C, channels, 3, padding=1)
        skips, ch = [channels], channels
        self.down = nn.ModuleList()
        for lvl, mult in enumerate(ch_mult):
            blocks, attns = [], []
            for _ in range(num_res_blocks):
                blocks.append(block(ch, channels * mult))
                ch = channels * mult
                attns.append(attn(ch, lvl in attn_levels))
                skips.append(ch)
            last = lvl == len(ch_mult) - 1
            self.down.append(Level(blocks, attns, None if last else nn.Conv2d(ch, ch, 3, stride=2, padding=1)))
            if not last:
                skips.append(ch)
        self.mid = nn.ModuleList([block(ch, ch), attn(ch, True), block(ch, ch)])
        self.up = nn.ModuleList()
        for lvl, mult in reversed(list(enumerate(ch_mult))):
            blocks, attns = [], []
            for _ in range(num_res_blocks + 1):
                blocks.append(block(ch + skips.pop(), channels * mult))
                ch = channels * mult
                attns.append(attn(ch, lvl in attn_levels))
            upsample = (
                None if lvl == 0 else nn.Sequential(nn.Upsample(scale_factor=2.0), nn.Conv2d(ch, ch, 3, padding=1))
            )
            self.up.append(Level(blocks, attns, upsample))
        assert not skips, "every down activation is consumed on the way up"
        self.out = nn.Sequential(group_norm(ch, norm_groups), nn.SiLU(), _zero(nn.Conv2d(ch, C, 3, padding=1)))

    def padded_size(self) -> tuple[int, int]:
        """(H, W) after padding to multiples of 2^(L-1); the resolution of level 0."""
        _, H, W = self.event_shape
        return -(-H // self.multiple) * self.multiple, -(-W // self.multiple) * self.multiple

    def forward(self, x: Tensor, time_input: Tensor, y: Tensor | None = None) -> Tensor:
        """x: (B, C, H, W), time_input: (B,), y: labels (B,) or None -> (B, C, H, W)."""
        if tuple(x.shape[1:]) != self.event_shape:
            raise ValueError(f"x must have shape (B, *{self.event_shape}), got {tuple(x.shape)}")
        H, W = x.shape[-2:]
        Hp, Wp = self.padded_size()
        emb = add_label(self.time(time_input), self.label, y, x.shape[0])
        h = self.inp(F.pad(x, (0, Wp - W, 0, Hp - H)))
        hs = [h]
        for level in self.down:
            for blk, att in zip(level.blocks, level.attention, strict=True):
                h = att(blk(h, emb))
                hs.append(h)
            if level.resample is not None:
                h = level.resample(h)
                hs.append(h)
        h = self.mid[2](self.mid[1](self.mid[0](h, emb)), emb)
        for level in self.up:
            for blk, att in zip(level.blocks, level.attention, strict=True):
                h = att(blk(torch.cat([h, hs.pop()], dim=1), emb))
            if level.resample is not None:
                h = level.resample(h)
        return self.out(h)[..., :H, :W]
