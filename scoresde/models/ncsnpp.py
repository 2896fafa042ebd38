"""NCSN++ and DDPM++ (Song et al. 2021, section 4.4 and appendix H) in pure PyTorch.

One U-Net family: BigGAN-style residual blocks (or DDPM's), FIR or naive resampling, skip connections rescaled
by 1/sqrt(2), self-attention at chosen resolutions, Gaussian Fourier or sinusoidal time features, and NCSN++'s
progressive growing: an input pyramid merged into the encoder (``progressive_input``: ``input_skip`` adds a
1x1-convolved FIR-downsampled copy of the image, ``residual`` a resampling conv) and an output pyramid
(``progressive``: ``output_skip`` sums upsampled per-level RGB outputs, ``residual`` a resampling conv path).

The networks know nothing of SDEs: ``net(x, c)`` returns what the reference network returns before its optional
division by sigma (``scale_by_sigma``), which :mod:`scoresde.models.reference_checkpoint` and
:class:`scoresde.ScoreModel` do instead. Modules are registered in the reference's order and blocks use its
parameter names, so its checkpoints load (see ``reference_checkpoint``).
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .._validation import check_choice
from .fir import FIR_KERNEL
from .ncsnpp_layers import (
    AttnBlock,
    Combine,
    Downsample,
    GaussianFourierProjection,
    ResnetBlockBigGAN,
    ResnetBlockDDPM,
    Upsample,
    conv2d,
    dense,
    group_norm,
    positional_embedding,
)

RESBLOCKS = ("biggan", "ddpm")
PROGRESSIVE = ("none", "output_skip", "residual")
PROGRESSIVE_INPUT = ("none", "input_skip", "residual")
EMBEDDINGS = ("fourier", "positional")


class TimeEmbedding(nn.Module):
    """Time features -> Dense-SiLU-Dense: the (B, 4 nf) vector every residual block receives.

    ``fourier``: Gaussian Fourier features of log(c) (``log_input``, the reference's c = sigma) or of c / 1000
    (the library's c in [0, 999]); ``positional``: DDPM's sinusoidal features of c.
    """

    def __init__(self, nf: int, embedding_type: str, fourier_scale: float, log_input: bool) -> None:
        super().__init__()
        self.embedding_type, self.nf, self.log_input = embedding_type, nf, log_input
        if embedding_type == "fourier":
            self.fourier = GaussianFourierProjection(nf, fourier_scale)
        self.Dense_0 = dense(2 * nf if embedding_type == "fourier" else nf, 4 * nf)
        self.Dense_1 = dense(4 * nf, 4 * nf)

    def forward(self, c: Tensor) -> Tensor:
        if self.embedding_type == "fourier":
            emb = self.fourier(torch.log(c) if self.log_input else c * 1e-3)
        else:
            emb = positional_embedding(c, self.nf)
        return self.Dense_1(nn.functional.silu(self.Dense_0(emb)))


class ResAttn(nn.Module):
    """A residual block, then attention when the level has it."""

    def __init__(self, res: nn.Module, attn: nn.Module | None) -> None:
        super().__init__()
        self.res, self.attn = res, attn

    def forward(self, x: Tensor, temb: Tensor) -> Tensor:
        h = self.res(x, temb)
        return self.attn(h) if self.attn is not None else h


class NCSNpp(nn.Module):
    """NCSN++ (defaults: the paper's CIFAR-10 VE network, ``configs/ve/cifar10_ncsnpp_continuous.py``).

    Args:
        event_shape: (C, H, W) with H = W divisible by 2^(len(ch_mult) - 1).
        nf: Base channels; level i has nf * ch_mult[i].
        ch_mult: Channel multipliers, one per resolution.
        num_res_blocks: Residual blocks per level in the encoder (num_res_blocks + 1 in the decoder).
        attn_resolutions: Image sides (pixels) at which self-attention follows each block.
        dropout: Dropout inside the residual blocks.
        resamp_with_conv: DDPM blocks: resample with a convolution.
        fir, fir_kernel: FIR resampling with this 1-D kernel (else nearest / mean pooling).
        skip_rescale: Divide every residual sum by sqrt(2).
        resblock_type: ``"biggan"`` (resampling inside residual blocks) or ``"ddpm"``.
        progressive, progressive_input, progressive_combine: NCSN++'s output and input pyramids (see module doc).
        embedding_type: ``"fourier"`` or ``"positional"``; fourier_scale: std of the Fourier frequencies.
        log_fourier_input: Fourier features of log(c) (the reference: c = sigma) instead of c / 1000.
        init_scale: Initial scale of the last layer of each block (0: 1e-10).
        centered: Inputs are in [-1, 1]; False: in [0, 1], mapped to 2 x - 1 first (the reference's VE models).

    Shapes: x (B, C, H, W), c (B,) -> (B, C, H, W).
    """

    def __init__(
        self,
        event_shape: Sequence[int],
        nf: int = 128,
        ch_mult: Sequence[int] = (1, 2, 2, 2),
        num_res_blocks: int = 4,
        attn_resolutions: Sequence[int] = (16,),
        dropout: float = 0.1,
        resamp_with_conv: bool = True,
        fir: bool = True,
        fir_kernel: Sequence[int] = FIR_KERNEL,
        skip_rescale: bool = True,
        resblock_type: str = "biggan",
        progressive: str = "none",
        progressive_input: str = "residual",
        progressive_combine: str = "sum",
        embedding_type: str = "fourier",
        fourier_scale: float = 16.0,
        log_fourier_input: bool = True,
        init_scale: float = 0.0,
        centered: bool = True,
    ) -> None:
        super().__init__()
        if len(event_shape) != 3 or event_shape[1] != event_shape[2]:
            raise ValueError(f"event_shape must be (C, H, H), square images, got {tuple(event_shape)}")
        channels, size = int(event_shape[0]), int(event_shape[1])
        levels = len(ch_mult)
        if size % 2 ** (levels - 1):
            raise ValueError(f"image side {size} must be divisible by 2^(len(ch_mult) - 1) = {2 ** (levels - 1)}")
        self.event_shape = tuple(int(s) for s in event_shape)
        self.resblock_type = check_choice("resblock_type", resblock_type, RESBLOCKS)
        self.progressive = check_choice("progressive", progressive, PROGRESSIVE)
        self.progressive_input = check_choice("progressive_input", progressive_input, PROGRESSIVE_INPUT)
        self.skip_rescale, self.centered, self.num_res_blocks = skip_rescale, centered, num_res_blocks
        check_choice("embedding_type", embedding_type, EMBEDDINGS)
        kw = dict(temb_dim=4 * nf, dropout=dropout, skip_rescale=skip_rescale, init_scale=init_scale)
        if resblock_type == "biggan":
            kw |= dict(fir=fir, fir_kernel=fir_kernel)
        Block = ResnetBlockBigGAN if resblock_type == "biggan" else ResnetBlockDDPM  # noqa: N806
        resample = dict(fir=fir, fir_kernel=fir_kernel)

        def attn(ch: int, res: int) -> AttnBlock | None:
            return AttnBlock(ch, skip_rescale, init_scale) if res in attn_resolutions else None

        self.time = TimeEmbedding(nf, embedding_type, fourier_scale, log_fourier_input)
        self.conv_in = conv2d(channels, nf)
        self.pyramid_downsample = Downsample(channels, **resample) if progressive_input == "input_skip" else None
        self.pyramid_upsample = Upsample(channels, **resample) if progressive == "output_skip" else None
        skips, ch, pyr_ch = [nf], nf, channels
        self.down = nn.ModuleList()
        for i, mult in enumerate(ch_mult):
            level, res = nn.Module(), size // 2**i
            level.blocks = nn.ModuleList()
            for _ in range(num_res_blocks):
                level.blocks.append(ResAttn(Block(ch, nf * mult, **kw), attn(nf * mult, res)))
                ch = nf * mult
                skips.append(ch)
            if i != levels - 1:
                if resblock_type == "ddpm":
                    level.resample = Downsample(ch, with_conv=resamp_with_conv, **resample)
                else:
                    level.resample = Block(ch, down=True, **kw)
                if progressive_input == "input_skip":
                    level.pyramid = Combine(pyr_ch, ch, progressive_combine)
                    ch = 2 * ch if progressive_combine == "cat" else ch
                elif progressive_input == "residual":
                    level.pyramid = Downsample(pyr_ch, ch, with_conv=True, **resample)
                    pyr_ch = ch
                skips.append(ch)
            self.down.append(level)
        self.mid = nn.ModuleList([Block(ch, **kw), AttnBlock(ch, skip_rescale, init_scale), Block(ch, **kw)])
        self.up = nn.ModuleList()
        pyr_ch = 0
        for i in reversed(range(levels)):
            level, res = nn.Module(), size // 2**i
            level.blocks = nn.ModuleList()
            for _ in range(num_res_blocks + 1):
                level.blocks.append(Block(ch + skips.pop(), nf * ch_mult[i], **kw))
                ch = nf * ch_mult[i]
            level.attn = attn(ch, res)
            if progressive == "output_skip":
                level.pyramid_norm, level.pyramid = group_norm(ch), conv2d(ch, channels, init_scale=init_scale)
            elif progressive == "residual" and i == levels - 1:
                level.pyramid_norm, level.pyramid = group_norm(ch), conv2d(ch, ch)
                pyr_ch = ch
            elif progressive == "residual":
                level.pyramid = Upsample(pyr_ch, ch, with_conv=True, **resample)
                pyr_ch = ch
            if i != 0:
                if resblock_type == "ddpm":
                    level.resample = Upsample(ch, with_conv=resamp_with_conv, **resample)
                else:
                    level.resample = Block(ch, up=True, **kw)
            self.up.append(level)
        assert not skips
        if progressive != "output_skip":
            self.out_norm, self.out_conv = group_norm(ch), conv2d(ch, channels, init_scale=init_scale)

    def _resample(self, level: nn.Module, h: Tensor, temb: Tensor) -> Tensor:
        return level.resample(h) if self.resblock_type == "ddpm" else level.resample(h, temb)

    def _skip(self, a: Tensor, b: Tensor) -> Tensor:
        return (a + b) / math.sqrt(2.0) if self.skip_rescale else a + b

    def forward(self, x: Tensor, c: Tensor) -> Tensor:
        """x (B, C, H, W), c (B,) -> (B, C, H, W)."""
        temb = self.time(c)
        if not self.centered:
            x = 2 * x - 1.0
        act = nn.functional.silu
        pyramid_in = x
        hs = [self.conv_in(x)]
        for level in self.down:
            for block in level.blocks:
                hs.append(block(hs[-1], temb))
            if hasattr(level, "resample"):
                h = self._resample(level, hs[-1], temb)
                if self.progressive_input == "input_skip":
                    pyramid_in = self.pyramid_downsample(pyramid_in)
                    h = level.pyramid(pyramid_in, h)
                elif self.progressive_input == "residual":
                    h = pyramid_in = self._skip(level.pyramid(pyramid_in), h)
                hs.append(h)
        h = self.mid[2](self.mid[1](self.mid[0](hs[-1], temb)), temb)
        pyramid = None
        for level in self.up:
            for block in level.blocks:
                h = block(torch.cat([h, hs.pop()], dim=1), temb)
            if level.attn is not None:
                h = level.attn(h)
            if self.progressive == "output_skip":
                out = level.pyramid(act(level.pyramid_norm(h)))
                pyramid = out if pyramid is None else self.pyramid_upsample(pyramid) + out
            elif self.progressive == "residual" and pyramid is None:
                pyramid = level.pyramid(act(level.pyramid_norm(h)))
            elif self.progressive == "residual":
                h = pyramid = self._skip(level.pyramid(pyramid), h)
            if hasattr(level, "resample"):
                h = self._resample(level, h, temb)
        assert not hs
        if self.progressive == "output_skip":
            return pyramid
        return self.out_conv(act(self.out_norm(h)))


class DDPMpp(NCSNpp):
    """DDPM++ (defaults: the paper's CIFAR-10 VP network, ``configs/vp/cifar10_ddpmpp_continuous.py``).

    NCSN++'s network with naive resampling, no pyramids and sinusoidal features of c = 999 t; same arguments.
    """

    def __init__(
        self,
        event_shape: Sequence[int],
        nf: int = 128,
        ch_mult: Sequence[int] = (1, 2, 2, 2),
        num_res_blocks: int = 4,
        attn_resolutions: Sequence[int] = (16,),
        dropout: float = 0.1,
        *,
        fir: bool = False,
        progressive_input: str = "none",
        embedding_type: str = "positional",
        **kwargs,
    ) -> None:
        super().__init__(event_shape, nf, ch_mult, num_res_blocks, attn_resolutions, dropout, fir=fir,
                         progressive_input=progressive_input, embedding_type=embedding_type, **kwargs)  # fmt: skip
