"""Exact consistency functions of the oracle's Gaussians: the probability-flow map x_t -> x_eps in closed form."""

import torch
from torch import nn


class ExactFlowMap(nn.Module):
    """f(x, t) = the exact PF-ODE map of ``data`` (an oracle Gaussian) from t to eps, as a module without weights."""

    def __init__(self, data, sde, eps=1e-3):
        super().__init__()
        self.data, self.sde, self.eps = data, sde, eps

    def forward(self, x, t):
        return self.data.flow(self.sde, x.double(), t, self.eps).to(x.dtype)


def make_net(event_shape, seed=0):
    """A small random network net(x, c) of the library's kind, with non-zero output layers."""
    from scoresde.models import MLP

    torch.manual_seed(seed)
    if len(event_shape) == 1:
        net = MLP(event_shape, width=32, num_blocks=1)
    else:
        from scoresde.models import UNet

        net = UNet(event_shape, channels=8, ch_mult=(1,), num_res_blocks=1, attn_levels=(), norm_groups=4)
    with torch.no_grad():  # the library zero-initialises output layers; a test network should act
        for p in net.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return net
