"""FIR up- and down-sampling (StyleGAN2, Karras et al. 2020) with plain ``conv2d``: no compiled ops.

``upfirdn2d`` inserts ``up - 1`` zeros between pixels, pads, filters with a 2-D FIR kernel and keeps every
``down``-th pixel. NCSN++ (Song et al. 2021, appendix H.1) resamples with the separable [1, 3, 3, 1] kernel,
normalised so that a constant image keeps its value. The padding arithmetic is StyleGAN2's, so the outputs
equal the CUDA ``upfirdn2d`` op of the reference implementations to float32 round-off.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

FIR_KERNEL = (1, 3, 3, 1)


def fir_kernel(k: Sequence[float], gain: float = 1.0) -> Tensor:
    """The 2-D kernel outer(k, k) / sum, times ``gain``: shape (len(k), len(k)), float32."""
    k1 = torch.as_tensor(k, dtype=torch.float64, device="cpu")
    if k1.ndim != 1 or k1.numel() < 1 or not bool((k1.sum() != 0).item()):
        raise ValueError(f"fir_kernel must be a non-empty 1-D sequence with a nonzero sum, got {k!r}")
    k2 = torch.outer(k1, k1)
    return (k2 / k2.sum() * gain).to(torch.float32)


def upfirdn2d(x: Tensor, kernel: Tensor, up: int = 1, down: int = 1, pad: tuple[int, int] = (0, 0)) -> Tensor:
    """Upsample by zero insertion, pad (``pad[0]`` before, ``pad[1]`` after, both axes), FIR-filter, subsample.

    Args:
        x: Images (B, C, H, W).
        kernel: 2-D FIR kernel (kh, kw), applied to every channel (correlation with the flipped kernel).
        up, down: Integer factors.
        pad: Non-negative padding of the upsampled image.

    Returns:
        (B, C, (H up + pad0 + pad1 - kh) // down + 1, same for W).
    """
    b, c, h, w = x.shape
    if up > 1:
        y = x.new_zeros(b, c, h * up, w * up)
        y[..., ::up, ::up] = x
        x = y
    x = F.pad(x, (pad[0], pad[1], pad[0], pad[1]))
    weight = kernel.flip(0, 1).to(x).expand(c, 1, *kernel.shape)
    return F.conv2d(x, weight, stride=down, groups=c)


def upsample_2d(x: Tensor, k: Sequence[float] = FIR_KERNEL, factor: int = 2) -> Tensor:
    """FIR upsampling by ``factor``: (B, C, H, W) -> (B, C, factor H, factor W)."""
    kernel = fir_kernel(k, gain=factor**2)
    p = kernel.shape[0] - factor
    return upfirdn2d(x, kernel, up=factor, pad=((p + 1) // 2 + factor - 1, p // 2))


def downsample_2d(x: Tensor, k: Sequence[float] = FIR_KERNEL, factor: int = 2) -> Tensor:
    """FIR downsampling by ``factor``: (B, C, H, W) -> (B, C, H / factor, W / factor)."""
    kernel = fir_kernel(k)
    p = kernel.shape[0] - factor
    return upfirdn2d(x, kernel, down=factor, pad=((p + 1) // 2, p // 2))


def naive_upsample_2d(x: Tensor, factor: int = 2) -> Tensor:
    """Nearest-neighbour upsampling by ``factor``."""
    return x.repeat_interleave(factor, dim=-2).repeat_interleave(factor, dim=-1)


def naive_downsample_2d(x: Tensor, factor: int = 2) -> Tensor:
    """Mean over factor x factor blocks."""
    return F.avg_pool2d(x, factor)


class FIRConv2d(nn.Module):
    """A k x k convolution fused with FIR up- or down-sampling by 2 (StyleGAN2's ``Conv2d``), padded once.

    Up: a stride-2 transposed convolution, then the FIR filter. Down: the FIR filter, then a stride-2 convolution.
    Parameters ``weight`` (out_ch, in_ch, k, k) and ``bias`` (out_ch,), as in the reference implementation.

    Args:
        in_ch, out_ch: Channels.
        kernel: Odd convolution size.
        up, down: Which resampling (exactly one of them).
        resample_kernel: The 1-D FIR kernel.
    """

    def __init__(
        self, in_ch: int, out_ch: int, kernel: int = 3, *, up: bool = False, down: bool = False,
        resample_kernel: Sequence[float] = FIR_KERNEL,
    ) -> None:  # fmt: skip
        super().__init__()
        if up == down:
            raise ValueError("FIRConv2d resamples: give exactly one of up=True or down=True")
        if kernel < 1 or kernel % 2 == 0:
            raise ValueError(f"kernel must be an odd positive size, got {kernel}")
        self.weight = nn.Parameter(torch.zeros(out_ch, in_ch, kernel, kernel))
        self.bias = nn.Parameter(torch.zeros(out_ch))
        self.up, self.down = up, down
        self.register_buffer("fir", fir_kernel(resample_kernel, gain=4 if up else 1), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        """(B, in_ch, H, W) -> (B, out_ch, 2H, 2W) (up) or (B, out_ch, H/2, W/2) (down)."""
        k, conv = self.fir.shape[0], self.weight.shape[-1]
        if self.up:
            p = (k - 2) - (conv - 1)
            w = self.weight.flip(-2, -1).transpose(0, 1)  # (in, out, k, k) for the transposed convolution
            x = F.conv_transpose2d(x, w, stride=2)
            x = upfirdn2d(x, self.fir, pad=((p + 1) // 2 + 1, p // 2 + 1))
        else:
            p = (k - 2) + (conv - 1)
            x = F.conv2d(upfirdn2d(x, self.fir, pad=((p + 1) // 2, p // 2)), self.weight, stride=2)
        return x + self.bias.view(1, -1, 1, 1)
