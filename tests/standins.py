"""Small stand-ins used by the training / checkpoint tests: an eps-predicting 2-layer MLP and oracle data."""

from __future__ import annotations

import torch
from torch import Tensor, nn

from scoresde._utils import append_dims, batch_time
from scoresde.oracle import Gaussian


class TinyScore(nn.Module):
    """score(x, t) = -eps_theta(x, t) / s(t) with eps_theta a 2-layer MLP on (x, t); has ``.sde`` like a ScoreModel."""

    def __init__(self, sde, dim: int = 2, width: int = 32, dropout: float = 0.0) -> None:
        super().__init__()
        self.sde = sde
        self.net = nn.Sequential(nn.Linear(dim + 1, width), nn.SiLU(), nn.Dropout(dropout), nn.Linear(width, dim))

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        t = batch_time(t, x)
        eps = self.net(torch.cat([x, t[:, None]], dim=1))
        return -eps / append_dims(self.sde.std(t), x.ndim)


def gaussian_data(n: int = 2048, seed: int = 0) -> tuple[Gaussian, Tensor]:
    """An anisotropic 2-D Gaussian (stds 0.3 and 1.2, mean 0.5) and n float32 samples of it."""
    oracle = Gaussian(torch.full((2,), 0.5), std=torch.tensor([0.3, 1.2]))
    return oracle, oracle.sample(n, generator=torch.Generator().manual_seed(seed)).float()
