"""Solver overhead on the default score network: wall time per score evaluation with and without the solver.

The issue's aim is that a solver adds no more than 10% on top of the default-size network. This measures the
default digits U-Net (conf/model/unet.yaml, random weights: the cost does not depend on them) wrapped in
ScoreModel for the VP SDE: the time of N bare score calls against the time per NFE of ``scoresde.sample`` with
N steps, interleaved and repeated, keeping the fastest repeat of each.

    python benchmarks/solver_overhead_default_model.py [--batch 64] [--steps 50] [--repeats 5]

Writes benchmarks/results/solver_overhead_default_model.{csv,md}. One torch thread.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import time
from pathlib import Path

import torch
import yaml

import scoresde
from scoresde._instantiate import build_score_model

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
SOLVERS = {  # label -> (solver name, options)
    "euler_maruyama": ("euler_maruyama", {}),
    "ancestral": ("ancestral", {}),
    # PC with the annealed Langevin corrector: the SNR rule divides by the score's norm, which is exactly zero
    # for the zero-initialised output layer of an untrained U-Net.
    "pc_annealed_langevin": ("pc", {"corrector": "annealed_langevin"}),
    "ode_rk4": ("ode", {"method": "rk4"}),
    "dpm_solver3": ("dpm_solver3", {}),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--batch", type=int, default=64)
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    torch.set_num_threads(1)
    sde = scoresde.VPSDE()
    config = yaml.safe_load((ROOT / "conf" / "model" / "unet.yaml").read_text())
    model = build_score_model({**config, "sigma_data": 0.5}, sde, (1, 8, 8)).eval()  # timing only
    shape = (args.batch, 1, 8, 8)
    x, t = torch.randn(shape), torch.full((args.batch,), 0.5)

    def bare() -> float:
        with torch.no_grad():
            start = time.perf_counter()
            for _ in range(args.steps):
                model(x, t)
            return (time.perf_counter() - start) / args.steps

    bare()  # warm-up
    best_bare, best = float("inf"), {k: float("inf") for k in SOLVERS}
    for _ in range(args.repeats):
        best_bare = min(best_bare, bare())
        for label, (name, options) in SOLVERS.items():
            gen = torch.Generator().manual_seed(0)
            _, info = scoresde.sample(
                sde, model, shape, solver=name, steps=args.steps, denoise=False, generator=gen, **options
            )
            best[label] = min(best[label], info.wall_time / info.nfe)
    rows = [
        {
            "solver": label,
            "ms_per_nfe": round(per * 1e3, 3),
            "score_ms": round(best_bare * 1e3, 3),
            "overhead_pct": round(100 * (per - best_bare) / best_bare, 1),
            "batch": args.batch,
            "steps": args.steps,
            "threads": 1,
            "machine": f"{platform.machine()} {os.cpu_count()} cores",
            "load_avg": round(os.getloadavg()[0], 2),
        }
        for label, per in best.items()
    ]
    RESULTS.mkdir(parents=True, exist_ok=True)
    with open(RESULTS / "solver_overhead_default_model.csv", "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    lines = [
        f"Default digits U-Net (VP), batch {args.batch}, {args.steps} steps, 1 thread, "
        f"{rows[0]['machine']}, torch {torch.__version__}; fastest of {args.repeats} repeats.",
        "",
        "| solver | ms / NFE | score alone (ms) | overhead |",
        "|---|---|---|---|",
    ]
    lines += [f"| {r['solver']} | {r['ms_per_nfe']} | {r['score_ms']} | {r['overhead_pct']:+.1f}% |" for r in rows]
    (RESULTS / "solver_overhead_default_model.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
