"""Training steps/s and sampling samples/s of the default models on this machine.

Models as the CLI builds them (conf/model/unet.yaml on the 8x8 digits, conf/model/mlp.yaml on the 2-D
checkerboard), trained by :class:`scoresde.training.Trainer` exactly as ``python -m scoresde.train`` does
(DSM loss, AdamW, clipping, EMA; no checkpoints or snapshots in the timed window), and sampled with
:func:`scoresde.sample` using the default grid solver (pc_vp: Euler-Maruyama, no corrector) and the PC sampler
with a Langevin corrector (500 steps each).

    python benchmarks/throughput.py                 # threads 1 and 2, CPU (a few minutes)
    python benchmarks/throughput.py --quick         # fewer steps, one thread
    python benchmarks/throughput.py --device cuda   # on a GPU

Writes benchmarks/results/throughput.csv (one row per measurement; machine, device, threads and batch size in
every row) and prints a markdown table. Timings on a shared machine vary with its load: the load average is
recorded beside each row.
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
from scoresde._instantiate import build_score_model, instantiate
from scoresde.training import TrainConfig, Trainer

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "benchmarks" / "results"
CASES = {  # name -> (data config, model config, training batch size)
    "digits_unet": ("digits", "unet", 128),
    "checkerboard_mlp": ("checkerboard", "mlp", 256),
}
SAMPLERS = {  # name -> (solver config, steps)
    "pc_vp_500": ("pc_vp", 500),
    "pc_langevin_500": ("pc", 500),
}


def _yaml(group: str, name: str) -> dict:
    return yaml.safe_load((ROOT / "conf" / group / f"{name}.yaml").read_text())


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def train_rate(model, data, batch_size: int, steps: int, device: torch.device) -> float:
    """Optimiser steps per second after 5 warm-up steps."""
    config = TrainConfig(steps=5, batch_size=batch_size, checkpoint_every=10**9, log_every=10**9)
    trainer = Trainer(model, data, config, device=device, progress=False)
    trainer.fit()
    trainer.config.steps = 5 + steps
    _sync(device)
    start = time.perf_counter()
    trainer.fit()
    _sync(device)
    return steps / (time.perf_counter() - start)


def sample_rate(model, event_shape, n: int, solver_name: str, steps: int, device: torch.device) -> tuple[float, int]:
    """Samples per second (n samples drawn in one batch) and the number of score evaluations."""
    solver = instantiate(_yaml("solver", solver_name))
    gen = torch.Generator(device).manual_seed(0)
    model.eval()
    with torch.no_grad():
        _, info = scoresde.sample(model.sde, model, (n, *event_shape), solver=solver, steps=steps, generator=gen,
                                  device=device)  # fmt: skip
    return n / info.wall_time, info.nfe


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--train-steps", type=int, default=100)
    parser.add_argument("--n-samples", type=int, default=64)
    parser.add_argument("--quick", action="store_true", help="20 training steps, 100 sampling steps, one thread")
    parser.add_argument("--out", type=Path, default=RESULTS / "throughput.csv")
    args = parser.parse_args()
    if args.quick:
        args.threads, args.train_steps = [1], 20
    device = torch.device(args.device)
    cores = len(os.sched_getaffinity(0))
    machine = f"{platform.processor() or platform.machine()}, {cores} cores available"
    if device.type == "cuda":
        machine += f", {torch.cuda.get_device_name(device)}"
    rows = []
    for threads in args.threads:
        if threads > cores:
            print(f"skipping threads={threads}: only {cores} cores in os.sched_getaffinity")
            continue
        torch.set_num_threads(threads)
        for case, (data_name, model_name, batch) in CASES.items():
            dataset = instantiate(_yaml("data", data_name)["dataset"])
            torch.manual_seed(0)
            model = build_score_model(_yaml("model", model_name), scoresde.VPSDE(), dataset.event_shape,
                                      data=dataset.train)  # fmt: skip
            params = sum(p.numel() for p in model.parameters())
            common = {"machine": machine, "device": str(device), "threads": threads, "case": case, "params": params}
            rate = train_rate(model, dataset.train, batch, args.train_steps, device)
            rows.append({**common, "what": "train", "batch_size": batch, "solver": "", "nfe": "",
                         "value": round(rate, 2), "unit": "steps/s", "load_avg": os.getloadavg()[0]})  # fmt: skip
            for sampler, (solver_name, steps) in SAMPLERS.items():
                steps = 100 if args.quick else steps
                rate, nfe = sample_rate(model, dataset.event_shape, args.n_samples, solver_name, steps, device)
                rows.append({**common, "what": "sample", "batch_size": args.n_samples, "solver": f"{sampler}",
                             "nfe": nfe, "value": round(rate, 2), "unit": "samples/s",
                             "load_avg": os.getloadavg()[0]})  # fmt: skip
            for row in rows[-1 - len(SAMPLERS) :]:
                print(row, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    print("\n| case | threads | what | batch | solver (NFE) | rate |\n|---|---|---|---|---|---|")
    for r in rows:
        solver = f"{r['solver']} ({r['nfe']})" if r["solver"] else ""
        print(
            f"| {r['case']} | {r['threads']} | {r['what']} | {r['batch_size']} | {solver} | {r['value']} {r['unit']} |"
        )
    print(f"\nwrote {args.out} ({machine}, device {device})")


if __name__ == "__main__":
    main()
