"""Building blocks of NCSN++ / DDPM++ (Song et al. 2021, appendix H): residual blocks, attention, resampling.

Parameter names inside each block are those of the reference implementation (``GroupNorm_0``, ``Conv_0``,
``Dense_0``, ``NIN_0``, ...), so its checkpoints map onto these modules one block at a time
(:mod:`scoresde.models.reference_checkpoint`). Skip connections are rescaled by 1/sqrt(2) when ``skip_rescale``
(BigGAN, Brock et al. 2019; Song et al. 2021 appendix H.1). Weights start from DDPM's initialisation: variance
scaling with fan_avg and a uniform distribution, ``init_scale`` 0 (read as 1e-10) on the last layer of a block.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._utils import append_dims
from .fir import FIR_KERNEL, FIRConv2d, downsample_2d, naive_downsample_2d, naive_upsample_2d, upsample_2d

SQRT2 = math.sqrt(2.0)


def variance_scaling_(weight: Tensor, scale: float = 1.0, in_axis: int = 1, out_axis: int = 0) -> Tensor:
    """DDPM's initialisation in place: U(-a, a), a = sqrt(3 scale / fan_avg); scale 0 is read as 1e-10."""
    scale = 1e-10 if scale == 0 else scale
    receptive = weight[0, 0].numel() if weight.ndim > 2 else 1
    fan_avg = (weight.shape[in_axis] + weight.shape[out_axis]) * receptive / 2
    with torch.no_grad():
        return weight.uniform_(-1, 1).mul_(math.sqrt(3 * scale / fan_avg))


def conv2d(in_ch: int, out_ch: int, kernel: int = 3, *, stride: int = 1, padding: int | None = None,
           init_scale: float = 1.0) -> nn.Conv2d:  # fmt: skip
    """A convolution with DDPM's initialisation and a zero bias (padding kernel // 2 by default)."""
    conv = nn.Conv2d(in_ch, out_ch, kernel, stride=stride, padding=kernel // 2 if padding is None else padding)
    variance_scaling_(conv.weight, init_scale)
    nn.init.zeros_(conv.bias)
    return conv


def dense(in_dim: int, out_dim: int) -> nn.Linear:
    """A linear layer with DDPM's initialisation and a zero bias."""
    layer = nn.Linear(in_dim, out_dim)
    variance_scaling_(layer.weight)
    nn.init.zeros_(layer.bias)
    return layer


def group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with min(channels / 4, 32) groups and eps 1e-6."""
    return nn.GroupNorm(min(channels // 4, 32), channels, eps=1e-6)


def positional_embedding(t: Tensor, dim: int, max_positions: float = 10_000.0) -> Tensor:
    """DDPM's sinusoidal features of t (B,) -> (B, dim): [sin(t w_k), cos(t w_k)], w_k = max^(-k / (dim/2 - 1))."""
    half = dim // 2
    step = math.log(max_positions) / (half - 1)
    freqs = torch.exp(torch.arange(half, dtype=torch.float32, device=t.device) * -step)
    arg = t.float()[:, None] * freqs[None, :]
    emb = torch.cat([arg.sin(), arg.cos()], dim=1)
    return F.pad(emb, (0, 1)) if dim % 2 else emb


class GaussianFourierProjection(nn.Module):
    """[sin(2 pi W s), cos(2 pi W s)] of a scalar s with fixed W ~ N(0, scale^2), a buffer: (B,) -> (B, 2 size)."""

    def __init__(self, embedding_size: int = 256, scale: float = 16.0) -> None:
        super().__init__()
        self.register_buffer("W", torch.randn(embedding_size) * scale)

    def forward(self, s: Tensor) -> Tensor:
        proj = s[:, None] * self.W[None, :] * 2 * math.pi
        return torch.cat([proj.sin(), proj.cos()], dim=-1)


class NIN(nn.Module):
    """A 1x1 convolution stored as the reference stores it: W (in_dim, num_units), b (num_units,)."""

    def __init__(self, in_dim: int, num_units: int, init_scale: float = 0.1) -> None:
        super().__init__()
        self.W = nn.Parameter(variance_scaling_(torch.empty(in_dim, num_units), init_scale, in_axis=0, out_axis=1))
        self.b = nn.Parameter(torch.zeros(num_units))

    def forward(self, x: Tensor) -> Tensor:
        """(B, in_dim, H, W) -> (B, num_units, H, W)."""
        return torch.einsum("bchw,cd->bdhw", x, self.W) + self.b.view(1, -1, 1, 1)


class AttnBlock(nn.Module):
    """Single-head self-attention over the H W positions with a residual connection (DDPM)."""

    def __init__(self, channels: int, skip_rescale: bool = False, init_scale: float = 0.0) -> None:
        super().__init__()
        self.GroupNorm_0 = group_norm(channels)
        self.NIN_0 = NIN(channels, channels)
        self.NIN_1 = NIN(channels, channels)
        self.NIN_2 = NIN(channels, channels)
        self.NIN_3 = NIN(channels, channels, init_scale=init_scale)
        self.skip_rescale = skip_rescale

    def forward(self, x: Tensor) -> Tensor:
        b, c, h, w = x.shape
        y = self.GroupNorm_0(x)
        q, k, v = self.NIN_0(y), self.NIN_1(y), self.NIN_2(y)
        weights = torch.einsum("bchw,bcij->bhwij", q, k) * c**-0.5
        weights = F.softmax(weights.reshape(b, h, w, h * w), dim=-1).reshape(b, h, w, h, w)
        out = x + self.NIN_3(torch.einsum("bhwij,bcij->bchw", weights, v))
        return out / SQRT2 if self.skip_rescale else out


class _Resample(nn.Module):
    """What up- and downsampling share: the conv (``Conv_0``, or ``Conv2d_0`` fused with the FIR filter) and options."""

    up: bool

    def __init__(self, in_ch: int, out_ch: int | None = None, with_conv: bool = False, fir: bool = False,
                 fir_kernel: Sequence[float] = FIR_KERNEL) -> None:  # fmt: skip
        super().__init__()
        out_ch = out_ch or in_ch
        if with_conv and fir:
            self.Conv2d_0 = FIRConv2d(in_ch, out_ch, 3, up=self.up, down=not self.up, resample_kernel=fir_kernel)
            variance_scaling_(self.Conv2d_0.weight)
        elif with_conv:
            self.Conv_0 = conv2d(in_ch, out_ch) if self.up else conv2d(in_ch, out_ch, stride=2, padding=0)
        self.with_conv, self.fir, self.fir_kernel = with_conv, fir, tuple(fir_kernel)


class Upsample(_Resample):
    """x2 upsampling: nearest (+ 3x3 conv ``Conv_0``) or FIR (fused with a conv ``Conv2d_0`` when with_conv)."""

    up = True

    def forward(self, x: Tensor) -> Tensor:
        if self.fir:
            return self.Conv2d_0(x) if self.with_conv else upsample_2d(x, self.fir_kernel)
        x = F.interpolate(x, scale_factor=2, mode="nearest")
        return self.Conv_0(x) if self.with_conv else x


class Downsample(_Resample):
    """/2 downsampling: mean pooling or a stride-2 conv ``Conv_0``, or FIR (fused with ``Conv2d_0``)."""

    up = False

    def forward(self, x: Tensor) -> Tensor:
        if self.fir:
            return self.Conv2d_0(x) if self.with_conv else downsample_2d(x, self.fir_kernel)
        if self.with_conv:
            return self.Conv_0(F.pad(x, (0, 1, 0, 1)))
        return F.avg_pool2d(x, 2)


class _ResnetBlock(nn.Module):
    """The layers both residual blocks share: GroupNorm-act-conv, + Dense(temb), GroupNorm-act-dropout-conv."""

    def __init__(self, in_ch: int, out_ch: int, temb_dim: int | None, dropout: float, skip_rescale: bool,
                 init_scale: float) -> None:  # fmt: skip
        super().__init__()
        self.GroupNorm_0 = group_norm(in_ch)
        self.Conv_0 = conv2d(in_ch, out_ch)
        if temb_dim is not None:
            self.Dense_0 = dense(temb_dim, out_ch)
        self.GroupNorm_1 = group_norm(out_ch)
        self.Dropout_0 = nn.Dropout(dropout)
        self.Conv_1 = conv2d(out_ch, out_ch, init_scale=init_scale)
        self.skip_rescale = skip_rescale

    def _finish(self, h: Tensor, shortcut: Tensor, temb: Tensor | None) -> Tensor:
        """The block after Conv_0: + Dense(temb), GroupNorm-act-dropout-conv, + the shortcut."""
        if temb is not None:
            h = h + append_dims(self.Dense_0(F.silu(temb)), h.ndim)
        h = self.Conv_1(self.Dropout_0(F.silu(self.GroupNorm_1(h))))
        return (shortcut + h) / SQRT2 if self.skip_rescale else shortcut + h


class ResnetBlockDDPM(_ResnetBlock):
    """DDPM's residual block: GroupNorm-act-conv, + Dense(temb), GroupNorm-act-dropout-conv; NIN shortcut."""

    def __init__(self, in_ch: int, out_ch: int | None = None, temb_dim: int | None = None, *, dropout: float = 0.1,
                 skip_rescale: bool = False, init_scale: float = 0.0) -> None:  # fmt: skip
        out_ch = out_ch or in_ch
        super().__init__(in_ch, out_ch, temb_dim, dropout, skip_rescale, init_scale)
        if in_ch != out_ch:
            self.NIN_0 = NIN(in_ch, out_ch)

    def forward(self, x: Tensor, temb: Tensor | None = None) -> Tensor:
        shortcut = self.NIN_0(x) if hasattr(self, "NIN_0") else x
        return self._finish(self.Conv_0(F.silu(self.GroupNorm_0(x))), shortcut, temb)


class ResnetBlockBigGAN(_ResnetBlock):
    """BigGAN's residual block with optional x2 up- or down-sampling of both paths (FIR or naive)."""

    def __init__(self, in_ch: int, out_ch: int | None = None, temb_dim: int | None = None, *, up: bool = False,
                 down: bool = False, dropout: float = 0.1, fir: bool = False,
                 fir_kernel: Sequence[float] = FIR_KERNEL, skip_rescale: bool = True,
                 init_scale: float = 0.0) -> None:  # fmt: skip
        out_ch = out_ch or in_ch
        super().__init__(in_ch, out_ch, temb_dim, dropout, skip_rescale, init_scale)
        if in_ch != out_ch or up or down:
            self.Conv_2 = conv2d(in_ch, out_ch, 1)
        self.up, self.down, self.fir, self.fir_kernel = up, down, fir, tuple(fir_kernel)

    def _resample(self, x: Tensor) -> Tensor:
        if self.up:
            return upsample_2d(x, self.fir_kernel) if self.fir else naive_upsample_2d(x)
        if self.down:
            return downsample_2d(x, self.fir_kernel) if self.fir else naive_downsample_2d(x)
        return x

    def forward(self, x: Tensor, temb: Tensor | None = None) -> Tensor:
        h = self.Conv_0(self._resample(F.silu(self.GroupNorm_0(x))))
        x = self._resample(x)
        return self._finish(h, self.Conv_2(x) if hasattr(self, "Conv_2") else x, temb)


class Combine(nn.Module):
    """Merge the input pyramid into the features: 1x1 conv of x, then concatenate (``cat``) or add (``sum``)."""

    def __init__(self, dim1: int, dim2: int, method: str = "cat") -> None:
        super().__init__()
        if method not in ("cat", "sum"):
            raise ValueError(f"progressive_combine must be 'cat' or 'sum', got {method!r}")
        self.Conv_0 = conv2d(dim1, dim2, 1)
        self.method = method

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        h = self.Conv_0(x)
        return torch.cat([h, y], dim=1) if self.method == "cat" else h + y
