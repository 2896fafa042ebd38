"""Every convolution of the U-Net sees a contiguous input, so no weight gradient comes back in another layout
(cuDNN returns channels-last gradients for channels-last inputs; DDP then warns that grad strides do not match)."""

import torch

from scoresde.models import UNet


def test_every_convolution_gets_a_contiguous_input():
    net = UNet((1, 8, 8), channels=8, ch_mult=[1, 2, 2], num_res_blocks=1, attn_levels=[1], norm_groups=4)
    seen = []
    for name, module in net.named_modules():
        if isinstance(module, torch.nn.Conv2d):
            module.register_forward_pre_hook(lambda m, args, name=name: seen.append((name, args[0].is_contiguous())))
    net(torch.randn(2, 1, 8, 8), torch.rand(2) * 999).sum().backward()
    assert seen and [name for name, contiguous in seen if not contiguous] == []
    assert all(p.grad.stride() == p.stride() for p in net.parameters() if p.grad is not None)
