"""FID of the likelihood baselines' samples, in the same feature space as benchmarks/fid_sweep.py, for context.

The bits/dim table puts a model beside two baselines fitted to the training split (a per-pixel categorical and a
full-covariance Gaussian, scoresde.likelihood.baselines); this script draws N samples from each of them and scores
them exactly as a FID-sweep point is scored (same dataset, feature extractor, reference statistics and floor), so
a model's FID can be read against "independent pixels" and "one Gaussian" as well as against the held-out floor.

    PYTHONPATH=. python benchmarks/fid_baselines.py --ckpt RUN --n 1000 --out benchmarks/results/fashion_mnist_cpu/fid

Writes <out>/fid_baselines.json and .md (one thread).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from scoresde.likelihood.baselines import GaussianBaseline, PixelCategorical
from scoresde.likelihood.quantization import Quantization
from scoresde.metrics.features import extractor_for
from scoresde.metrics.quality import SampleEvaluator
from scoresde.training.checkpoint import load_checkpoint


def baseline_samples(train: torch.Tensor, levels: int, data_range: tuple[float, float], n: int, seed: int):
    """n samples of each baseline, on the data's level grid, shape (n, *event_shape)."""
    gen = torch.Generator().manual_seed(seed)
    quant = Quantization(levels, data_range)
    shape = train.shape[1:]
    cat = PixelCategorical.fit(train, quant)
    k = torch.multinomial(cat.log_probs.exp(), n, replacement=True, generator=gen).T  # (n, D)
    spacing = (quant.hi - quant.lo) / (levels - 1)
    grid = lambda k: (quant.lo + spacing * k.double()).float().reshape(n, *shape)  # noqa: E731
    gauss = GaussianBaseline.fit(train, quant, generator=gen)
    torch.manual_seed(seed)  # MultivariateNormal.sample has no generator argument
    y = gauss.dist.sample((n,))  # dequantised values: round back to the nearest level
    k_gauss = ((y - quant.lo) / spacing).round().clamp(0, levels - 1)
    return {"per-pixel categorical": grid(k), "gaussian (full covariance)": grid(k_gauss)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--ckpt", required=True, help="a checkpoint file or training run directory (its dataset)")
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args()
    torch.set_num_threads(1)
    dataset = load_checkpoint(args.ckpt).load_dataset()
    if dataset.levels is None:
        raise SystemExit(f"{dataset.name} is not discrete (no levels): the baselines need quantised data")
    evaluator = SampleEvaluator(dataset, extractor_for(dataset, "auto"), seed=args.seed)
    floor = evaluator.floor(args.n)
    rows = {}
    for name, x in baseline_samples(dataset.train, dataset.levels, dataset.data_range, args.n, args.seed).items():
        start = time.perf_counter()
        scores = evaluator.evaluate(x, matched_n=floor.n).as_dict()
        rows[name] = scores | {"time_s": round(time.perf_counter() - start, 2)}
        print(f"{name}: FID {scores['fid']:.2f} (floor {floor.fid:.2f} at n={floor.n})", flush=True)
    args.out.mkdir(parents=True, exist_ok=True)
    result = {"dataset": dataset.name, "n": args.n, "extractor": evaluator.extractor.key,
              "floor": floor.as_dict(), "baselines": rows}  # fmt: skip
    (args.out / "fid_baselines.json").write_text(json.dumps(result, indent=2) + "\n")
    lines = [f"| samples ({dataset.name}, N={args.n}) | FID | KID | classifier score |", "|---|---|---|---|"]
    lines += [f"| {k} | {v['fid']:.2f} | {v['kid']:.4f} | {v['score']:.2f} |" for k, v in rows.items()]
    lines.append(f"| held-out test images (floor) | {floor.fid:.2f} | {floor.kid:.4f} | {floor.score:.2f} |")
    (args.out / "fid_baselines.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
