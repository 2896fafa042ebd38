"""A minimal, self-contained EDM training loop on the digits, evaluated exactly as ``python -m scoresde.train`` does.

Issue 16 reports 2.307 bits/dim for "EDM's recipe on the same U-Net" while the library's ``train=edm`` gave 2.45-2.49.
This script is the recipe written out by hand (Karras et al. 2022, sec. 5 and table 1), in the VE form EDM works in,
so it can be set beside the library's trainer:

    D(x; sigma) = c_skip x + c_out F(c_in x; c_noise),   c_skip = sd^2 / (sigma^2 + sd^2),
    c_out = sigma sd / sqrt(sigma^2 + sd^2),  c_in = 1 / sqrt(sigma^2 + sd^2),  c_noise = ln(sigma) / 4,
    ln sigma ~ N(-1.2, 1.2^2),  loss = (sigma^2 + sd^2) / (sigma sd)^2 ||D(x0 + sigma n; sigma) - x0||^2 (mean),

with F = ``scoresde.models.UNet`` at the defaults of conf/model/unet.yaml, sd = the training data's standard
deviation, AdamW (lr 2e-3, weight decay 0, betas 0.9/0.999) with 100 linear warm-up steps, gradient norm clipped to 1,
batch 128 drawn as shuffled epochs, EMA 0.999 with the (1 + n) / (10 + n) ramp, 2,000 steps, seed 0: the CLI's
settings. The trained EMA denoiser becomes the score (D(x; sigma) - x) / sigma^2 of ``scoresde.VESDE(0.01, 9.5)``
(the CLI's ``sde=ve``; sigma = the SDE's s(t)) and goes through ``scoresde.training.evaluation.evaluate_likelihood``
with the CLI's eval settings (first 128 test digits, 2 draws, Rademacher probes, rtol = atol = 1e-4, seed = the
training seed).

``--dequantize`` trains on uniformly dequantised data, lo + (hi - lo)(k + u) / K with u ~ U[0, 1) drawn afresh for
every batch: the bins the bits/dim bound integrates over (scoresde.data.dequantize).

    OMP_NUM_THREADS=1 python benchmarks/edm_minimal_digits.py --seed 0 --out OUT.json [--dequantize]
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch
from torch import Tensor, nn

import scoresde
from scoresde.data import dequantize, digits, to_levels
from scoresde.models import UNet
from scoresde.training.evaluation import evaluate_likelihood

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import record, write_json  # noqa: E402


class Denoiser(nn.Module):
    """EDM's preconditioned denoiser D(x; sigma) around a network F (Karras et al. 2022, eq. 7, table 1)."""

    def __init__(self, net: nn.Module, sigma_data: float) -> None:
        super().__init__()
        self.net, self.sigma_data = net, sigma_data

    def forward(self, x: Tensor, sigma: Tensor) -> Tensor:
        """x: (B, C, H, W), sigma: (B,) -> the estimate of x0, (B, C, H, W)."""
        sd2 = self.sigma_data**2
        s = sigma.reshape(-1, 1, 1, 1)
        c_skip, c_out, c_in = sd2 / (s**2 + sd2), s * self.sigma_data / (s**2 + sd2).sqrt(), (s**2 + sd2).rsqrt()
        return c_skip * x + c_out * self.net(c_in * x, sigma.log() / 4)


class VEScore(nn.Module):
    """The denoiser as the score of a VE SDE: (D(x; s(t)) - x) / s(t)^2 (Tweedie)."""

    def __init__(self, denoiser: Denoiser, sde: scoresde.VESDE) -> None:
        super().__init__()
        self.denoiser, self.sde = denoiser, sde

    def forward(self, x: Tensor, t: Tensor) -> Tensor:
        sigma = self.sde.std(t.expand(x.shape[0]) if t.ndim == 0 else t).to(x.dtype)
        return (self.denoiser(x, sigma) - x) / sigma.reshape(-1, 1, 1, 1) ** 2


def edm_loss(denoiser: Denoiser, x0: Tensor, gen: torch.Generator, p_mean: float, p_std: float) -> Tensor:
    """EDM's loss (Karras et al. 2022, eq. 2 with table 1's lambda and p_train), averaged over batch and pixels."""
    sigma = (p_mean + p_std * torch.randn(x0.shape[0], generator=gen)).exp()
    n = torch.randn(x0.shape, generator=gen) * sigma.reshape(-1, 1, 1, 1)
    sd2 = denoiser.sigma_data**2
    weight = ((sigma**2 + sd2) / (sigma * denoiser.sigma_data) ** 2).reshape(-1, 1, 1, 1)
    return (weight * (denoiser(x0 + n, sigma) - x0) ** 2).mean()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--dequantize", action="store_true", help="train on uniformly dequantised digits")
    parser.add_argument("--n-test", type=int, default=128)
    parser.add_argument("--out", type=Path, required=True, help="JSON file for the result")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = digits()
    train = data.train
    sigma_data = float(train.double().std())
    torch.manual_seed(args.seed)
    net = UNet(data.event_shape)  # conf/model/unet.yaml's settings are the constructor's defaults
    denoiser = Denoiser(net, sigma_data)
    ema = Denoiser(UNet(data.event_shape), sigma_data)
    ema.load_state_dict(denoiser.state_dict())
    ema.requires_grad_(False)
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3, betas=(0.9, 0.999), weight_decay=0.0)
    gen = torch.Generator().manual_seed(args.seed)
    levels = to_levels(train, data.levels, data.data_range)
    order, pos, losses = torch.randperm(len(train), generator=gen), 0, []
    start = time.perf_counter()
    for step in range(args.steps):
        if pos + 128 > len(train):
            order, pos = torch.randperm(len(train), generator=gen), 0
        idx, pos = order[pos : pos + 128], pos + 128
        if args.dequantize:
            u = torch.rand(levels[idx].shape, generator=gen, dtype=torch.float64)
            x0 = dequantize(levels[idx], u, data.levels, data.data_range).float()
        else:
            x0 = train[idx]
        for group in opt.param_groups:
            group["lr"] = 2e-3 * min(1.0, (step + 1) / 100)
        loss = edm_loss(denoiser, x0, gen, -1.2, 1.2)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        d = min(0.999, (1 + step) / (10 + step))
        with torch.no_grad():
            for pe, p in zip(ema.parameters(), denoiser.parameters(), strict=True):
                pe.lerp_(p, 1 - d)
        losses.append(loss.item())
    train_s = time.perf_counter() - start
    sde = scoresde.VESDE(sigma_min=0.01, sigma_max=9.5)
    model = VEScore(ema.eval(), sde)
    report = evaluate_likelihood(sde, model, data.train, data.test[: args.n_test], levels=data.levels,
                                 data_range=data.data_range, seed=args.seed, draws=2, divergence="rademacher",
                                 rtol=1e-4, atol=1e-4)  # fmt: skip
    print(report.table())
    payload = {"recipe": "edm_minimal" + ("_dequantized" if args.dequantize else ""), "sde": "ve",
               "seed": args.seed, "steps": args.steps, "train_seconds": train_s,
               "final_loss_mean_last_50": sum(losses[-50:]) / 50, "sigma_data": sigma_data,
               "load_average": os.getloadavg(), "eval": report.as_dict()}  # fmt: skip
    meta = record(threads=1, placeholders={"OUT.json": str(args.out)}, seed=args.seed)
    write_json(args.out, payload, meta)
    print(f"trained {args.steps} steps in {train_s:.0f} s; wrote {args.out}")


if __name__ == "__main__":
    main()
