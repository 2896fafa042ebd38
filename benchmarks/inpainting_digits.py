"""Inpainting the digits test set with a trained model: does the inpainted digit keep its class?

For each mask (half: top half observed; box: a centred 4x4 box missing; random: half the pixels missing) and each
method at a budget of 1000 score evaluations per sample, one inpainting of each of the first ``--n`` test digits is
drawn; the project's digits classifier (scoresde.metrics.classifier, trained with
``python -m scoresde.metrics.train_classifier data=digits``) labels it, and the share that keeps the original
label is reported, with the same share for the masked input (missing pixels set to the background level) and for
the originals. Also the RMSE of the filled pixels to the original (a posterior sample is not meant to equal it).

    python benchmarks/inpainting_digits.py --ckpt RUN --n 100

Writes benchmarks/results/inpainting_digits/label_agreement.{csv,md}. One thread on the CPU.
"""

from __future__ import annotations

import argparse
import csv
import os
import time
from pathlib import Path

import torch

import scoresde
from scoresde.cli.tasks import make_mask
from scoresde.metrics.classifier import load_classifier

OUT = Path(__file__).parent / "results" / "inpainting_digits"
METHODS = {
    "replacement (EM, 1000 steps)": {"method": "replacement", "solver": "euler_maruyama"},
    "repaint (U=10, 100 steps)": {"method": "repaint", "resamplings": 10},
    "smc (K=10, 99 steps)": {"method": "smc", "particles": 10, "ensemble": False},  # the plain filter
    "smc (default: K=30, 26 steps, ensemble)": {"method": "smc"},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", required=True)
    parser.add_argument("--n", type=int, default=100)
    parser.add_argument("--nfe", type=int, default=1000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    ckpt = scoresde.load_checkpoint(args.ckpt)
    data = ckpt.load_dataset()
    x0, labels = data.test[: args.n], data.test_labels[: args.n]
    clf, _ = load_classifier("digits")
    agree = lambda x: float((clf(x).argmax(1) == labels).float().mean())  # noqa: E731
    rows = []
    for spec in ("half", "box", "random"):
        mask = make_mask(spec, ckpt.event_shape, args.n, torch.Generator().manual_seed(0))
        lo = data.data_range[0]
        rows.append({"mask": spec, "method": "masked input", "agreement": agree(torch.where(mask, x0, lo)),
                     "rmse_missing": float((torch.where(mask, x0, lo) - x0)[~mask].pow(2).mean().sqrt()),
                     "nfe": 0, "seconds": 0.0})  # fmt: skip
        for name, options in METHODS.items():
            start = time.perf_counter()
            x, info = scoresde.inpaint(ckpt.sde, ckpt.score_fn, x0, mask, nfe=args.nfe,
                                       generator=torch.Generator().manual_seed(1), **options)  # fmt: skip
            row = {"mask": spec, "method": name, "agreement": agree(x),
                   "rmse_missing": float((x - x0)[~mask].pow(2).mean().sqrt()), "nfe": info.nfe,
                   "seconds": time.perf_counter() - start}  # fmt: skip
            rows.append(row)
            print(row, flush=True)
    OUT.mkdir(parents=True, exist_ok=True)
    with open(OUT / "label_agreement.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    lines = [
        "# Digits inpainting: share of inpaintings the digits classifier gives the original's label",
        "",
        f"Model {ckpt.path} (step {ckpt.step}, EMA), first {args.n} test digits, one inpainting each, budget "
        f"{args.nfe} score evaluations per sample. Originals: {agree(x0):.2f}. One thread, load average "
        f"{os.getloadavg()[0]:.1f}.",
        "",
        "| mask | method | label agreement | RMSE of filled pixels | nfe | seconds |",
        "|---|---|---:|---:|---:|---:|",
    ]
    lines += [f"| {r['mask']} | {r['method']} | {r['agreement']:.2f} | {r['rmse_missing']:.3f} | {r['nfe']} | "
              f"{r['seconds']:.0f} |" for r in rows]  # fmt: skip
    (OUT / "label_agreement.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
