"""Parameter counts, forward-pass and training-step times of the default networks (conf/model/*.yaml).

Writes benchmarks/results/model_sizes.csv. One thread by default (the setting the project's CPU numbers use); the
machine's 1-minute load average is recorded with each row, since other jobs on a shared machine slow the timings;
a training step is forward + backward of the DSM loss through the ScoreModel (VP SDE) + an Adam update.

    python benchmarks/model_sizes.py [--threads 1] [--batch 128] [--repeats 5] [--only mlp,unet] [--out FILE]
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
from scoresde._instantiate import instantiate
from scoresde.models import summarize

ROOT = Path(__file__).resolve().parents[1]
CASES = [("mlp", (2,)), ("unet", (1, 8, 8)), ("unet_large", (1, 28, 28)), ("unet_large", (3, 32, 32))]


def _cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return f"{line.split(':', 1)[1].strip()} ({os.cpu_count()} cores)"
    except OSError:
        pass
    return platform.machine()


def train_step_ms(model: torch.nn.Module, event_shape: tuple[int, ...], batch: int, repeats: int) -> float:
    opt = torch.optim.Adam(model.parameters(), lr=1e-4)
    g = torch.Generator().manual_seed(0)
    x0 = torch.rand(batch, *event_shape, generator=g) * 2 - 1
    times = []
    for i in range(repeats + 1):
        start = time.perf_counter()
        loss = scoresde.dsm_loss(model.sde, model, x0, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
        if i:
            times.append(time.perf_counter() - start)
    return 1000 * sorted(times)[len(times) // 2]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--only", default="", help="comma-separated config names to run (default: all)")
    parser.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "model_sizes.csv")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = []
    only = {n for n in args.only.split(",") if n}
    for name, shape in CASES:
        if only and name not in only:
            continue
        cfg = yaml.safe_load((ROOT / "conf" / "model" / f"{name}.yaml").read_text())
        net = instantiate(cfg["net"], event_shape=shape)
        model = scoresde.ScoreModel(net, scoresde.VPSDE(), prediction=cfg["prediction"], time_input=cfg["time_input"])
        s = summarize(net, shape, batch_size=args.batch, repeats=args.repeats)
        step = train_step_ms(model, shape, args.batch, args.repeats)
        rows.append(
            {
                "config": name,
                "event_shape": "x".join(map(str, shape)),
                "parameters": s.num_parameters,
                "batch": args.batch,
                "threads": args.threads,
                "forward_ms": round(s.forward_ms, 2),
                "train_step_ms": round(step, 2),
                "train_steps_per_s": round(1000 / step, 2),
                "machine": _cpu_name(),
                "load_avg_1min": round(os.getloadavg()[0], 2),
            }
        )
        print(rows[-1], flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with open(args.out, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
