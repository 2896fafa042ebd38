"""Sample from a released checkpoint of the reference implementation with any solver of this library.

    python benchmarks/sample_reference.py --ckpt checkpoint_26.pth --config vp/cifar10_ddpmpp_continuous \\
        --solver ode --n 64 --out outputs/reference_samples
    torchrun --nproc_per_node=8 benchmarks/sample_reference.py --ckpt ... --n 50000 --batch-size 500 --device cuda

Writes ``samples.npz`` (``samples`` in [-1, 1], ``nfe_per_batch``, ``wall_time``) and ``samples.png`` (the first 64)
into ``--out``. Batches are seeded by (seed, batch) and dealt to the torchrun ranks (:mod:`scoresde.distributed`), so
the samples do not depend on the number of processes.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

import scoresde
from scoresde.cli.plotting import save_image_grid
from scoresde.distributed import init_from_env, local_device, sample_sharded
from scoresde.models.reference_checkpoint import REFERENCE_CONFIGS


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--ckpt", required=True, help="a released checkpoint_<n>.pth")
    parser.add_argument("--config", required=True, choices=sorted(REFERENCE_CONFIGS))
    parser.add_argument("--solver", default="ode", help="a name in scoresde.SOLVERS")
    parser.add_argument("--options", default="{}", help='solver options as JSON, e.g. \'{"method": "rk4"}\'')
    parser.add_argument("--steps", type=int, default=None)
    parser.add_argument("--n", type=int, default=64)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--raw", action="store_true", help="the raw weights instead of the EMA weights")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--out", type=Path, default=Path("outputs/reference_samples"))
    args = parser.parse_args(argv)
    group = init_from_env(args.device)
    device = local_device(args.device)
    ckpt = scoresde.load_reference_checkpoint(args.ckpt, args.config, ema=not args.raw, map_location=device)
    x, info = sample_sharded(ckpt.sde, ckpt.score_fn, args.n, ckpt.event_shape, seed=args.seed,
                             batch_size=args.batch_size, device=device, solver=args.solver, steps=args.steps,
                             **json.loads(args.options))  # fmt: skip
    if not group.is_main:
        return
    args.out.mkdir(parents=True, exist_ok=True)
    np.savez_compressed(args.out / "samples.npz", samples=x.numpy(), nfe_per_batch=np.array(info.nfe),
                        wall_time=info.wall_time, world_size=info.world_size)  # fmt: skip
    save_image_grid(x[:64], args.out / "samples.png", data_range=(-1.0, 1.0),
                    title=f"{args.config} step {ckpt.step}, {args.solver}, {max(info.nfe)} NFE")  # fmt: skip
    print(f"{x.shape[0]} samples, {max(info.nfe)} NFE per batch, {info.wall_time:.1f} s on rank 0: {args.out}")


if __name__ == "__main__":
    main()
