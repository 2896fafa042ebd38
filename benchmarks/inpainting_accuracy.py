"""Accuracy of the inpainting and colorization samplers against the exact Gaussian conditional.

Inpainting: a correlated 12-D Gaussian (scoresde.oracle.anisotropic_gaussian(12), stds 0.1-1, randomly rotated)
with every other coordinate observed at one fixed draw y. Colorization: a correlated Gaussian on colour images of
shape (3, 2, 2) (a random full covariance), the grey channel of the paper's orthogonal colour basis observed.
For each SDE (VP, sub-VP, VE with sigma_max = 20) and each method, with the EXACT score, ``--n`` samples are drawn
at a ladder of budgets (score evaluations per sample; ``inpaint(..., nfe=budget)`` never exceeds it). The error is
the Frechet distance of the samples' unobserved coordinates to the exact conditional N(mean, cov) (closed form,
scoresde.conditioning.gaussian_posterior), divided by the noise floor: the mean Frechet distance of as many exact
conditional draws (20 repeats). A ratio near 1 is as good as exact sampling at this n; the floor shrinks as 1/n,
so the ratio of a biased method grows with n.

    python benchmarks/inpainting_accuracy.py            # full run
    python benchmarks/inpainting_accuracy.py --quick    # smoke run
    python benchmarks/inpainting_accuracy.py --only smc # rerun the methods whose name contains "smc", keep the rest
    python benchmarks/inpainting_accuracy.py --only smc --n 4000 --budgets 1000 --seeds 30 31 32 --tasks inpaint \
        --out inpainting_accuracy_seeds     # the mean over fresh seeds (one seed is noisy: about +-40% at n=4000)

Writes benchmarks/results/inpainting_accuracy.{csv,md,png} (or ``--out``). One thread on the CPU. By default each
cell uses one seed, the budget; with ``--seeds`` every cell is the mean ratio over those seeds and the CSV keeps each
seed's ratio.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import time
from pathlib import Path

import matplotlib
import torch

import scoresde
from scoresde.conditioning import Observation, gaussian_posterior
from scoresde.conditioning.colorization import COLOR_BASIS, colorize
from scoresde.oracle import Gaussian, anisotropic_gaussian

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RESULTS = Path(__file__).parent / "results"
SDES = {
    "vp": lambda: scoresde.VPSDE(),
    "subvp": lambda: scoresde.SubVPSDE(),
    "ve": lambda: scoresde.VESDE(sigma_min=0.01, sigma_max=20.0),
}
METHODS = {
    "replacement (reverse diffusion)": {"method": "replacement"},
    "replacement (ancestral)": {"method": "replacement", "solver": "ancestral"},
    "replacement (Euler-Maruyama)": {"method": "replacement", "solver": "euler_maruyama"},
    "replacement (PC, annealed Langevin)": {"method": "replacement", "solver": "pc", "corrector": "annealed_langevin"},
    "replacement (ODE rk4, fixed noise)": {
        "method": "replacement",
        "solver": "ode",
        "method_": "rk4",
        "noise": "fixed",
    },
    "repaint (U=10, ancestral)": {"method": "repaint", "resamplings": 10},
    "smc (K=10)": {"method": "smc", "particles": 10, "ensemble": False},  # the plain filter
    "smc (K=sqrt(nfe/10))": lambda nfe: {
        "method": "smc",
        "particles": max(2, round((nfe / 10) ** 0.5)),
        "ensemble": False,
    },
    "smc (K=30, ensemble)": {"method": "smc", "particles": 30, "ensemble": True},
    "smc (default: ensemble, K=0.95 sqrt(nfe))": {"method": "smc"},
}
BUDGETS = [100, 300, 1000, 3000]
LONG_BUDGETS = {"smc (K=sqrt(nfe/10))": [10000]}  # the consistent schedule: particles and steps both grow


def options(spec: dict) -> dict:
    spec = dict(spec)
    if "method_" in spec:
        spec["solver"] = scoresde.solvers.ProbabilityFlowODE(spec.pop("method_"))
    return spec


def inpainting_problem():
    g = anisotropic_gaussian(12, seed=0)
    y = g.sample(1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)[0]
    mask = torch.zeros(12, dtype=torch.bool)
    mask[::2] = True
    return g, y, mask, gaussian_posterior(g, Observation(mask), y)


def colour_problem():
    gen = torch.Generator().manual_seed(1)
    a = torch.randn(12, 12, generator=gen, dtype=torch.float64) / 12**0.5
    g = Gaussian(0.3 * torch.randn(3, 2, 2, generator=gen, dtype=torch.float64), cov=a @ a.T + 0.01 * torch.eye(12))
    x = g.sample(1, generator=gen, dtype=torch.float64)
    grey = x.mean(1, keepdim=True)[0]  # (1, 2, 2)
    obs = Observation(torch.tensor([True, False, False])[:, None, None].expand(3, 2, 2), basis=COLOR_BASIS)
    return g, grey, gaussian_posterior(g, obs, grey.expand(3, 2, 2))


def floor(post, n: int, repeats: int = 20) -> float:
    gen = torch.Generator().manual_seed(123)
    return sum(post.frechet(post.sample(n, generator=gen)) for _ in range(repeats)) / repeats


def run(
    quick: bool,
    n: int,
    only: str | None = None,
    budgets: list[int] | None = None,
    seeds: list[int] | None = None,
    tasks: tuple[str, ...] = ("inpaint", "colorize"),
) -> list[dict]:
    rows = []
    fixed = budgets is not None
    budgets = budgets or ([100, 1000] if quick else BUDGETS)
    g, y0, mask, post = inpainting_problem()
    gc, grey, post_c = colour_problem()
    fl, fl_c = floor(post, n), floor(post_c, n)
    for sde_name, make in SDES.items():
        sde = make()
        for task in tasks:
            for name in METHODS:
                if only is not None and only not in name:
                    continue
                for budget in budgets + ([] if quick or fixed else LONG_BUDGETS.get(name, [])):
                    spec = METHODS[name](budget) if callable(METHODS[name]) else METHODS[name]
                    start, fds = time.perf_counter(), []
                    try:
                        for seed in seeds or [budget]:
                            gen = torch.Generator().manual_seed(seed)
                            if task == "inpaint":
                                y = y0.expand(n, 12).clone()
                                x, info = scoresde.inpaint(sde, g.score_fn(sde), y, mask, nfe=budget, generator=gen,
                                                           **options(spec))  # fmt: skip
                                fds.append(post.frechet(post.coords(x)))
                                fl_used = fl
                            else:
                                x, info = colorize(sde, gc.score_fn(sde), grey.expand(n, 1, 2, 2).clone(), nfe=budget,
                                                   generator=gen, **options(spec))  # fmt: skip
                                fds.append(post_c.frechet(post_c.coords(x)))
                                fl_used = fl_c
                    except ValueError as err:  # a budget below one step of the method
                        print(f"skip {task} {sde_name} {name} {budget}: {err}")
                        continue
                    fd = sum(fds) / len(fds)
                    row = {
                        "task": task, "sde": sde_name, "method": name, "budget": budget, "nfe": info.nfe,
                        "steps": info.steps, "fd": fd, "floor": fl_used, "ratio": fd / fl_used,
                        "final_ess": info.extras.get("final_ess", ""), "seconds": time.perf_counter() - start,
                        "seed_ratios": " ".join(f"{v / fl_used:.2f}" for v in fds),
                    }  # fmt: skip
                    rows.append(row)
                    print(f"{task:8s} {sde_name:5s} {name:38s} nfe {info.nfe:5d} steps {info.steps:4d} "
                          f"FD/floor {row['ratio']:8.2f}  {row['seconds']:.1f}s", flush=True)  # fmt: skip
    return rows


def write(rows: list[dict], n: int, seconds: float, only: str | None = None, out: str = "inpainting_accuracy",
          seeds: list[int] | None = None) -> None:  # fmt: skip
    RESULTS.mkdir(exist_ok=True)
    with open(RESULTS / f"{out}.csv", "w", newline="") as f:
        w = csv.DictWriter(f, fieldnames=list(dict.fromkeys(key for row in rows for key in row)), restval="")
        w.writeheader()
        w.writerows(rows)
    budgets = sorted({r["budget"] for r in rows})
    lines = [
        "# Inpainting and colorization accuracy against the exact Gaussian conditional",
        "",
        f"Frechet distance of {n} samples' unobserved coordinates to the exact conditional, divided by the noise "
        f"floor (mean FD of {n} exact conditional draws); columns are budgets (score evaluations per sample, never "
        "exceeded). Exact scores. Inpainting: 12-D correlated Gaussian, every other coordinate observed. Colorization: "
        "a correlated Gaussian on (3, 2, 2) colour images, grey channel observed. "
        + ("One seed per cell (the budget)." if seeds is None else f"Mean ratio over seeds {seeds} per cell."),
        "",
        f"Machine: {platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread, "
        f"load average {os.getloadavg()[0]:.1f} at the end (2 cores shared by several jobs); "
        + (f"{seconds:.0f} s in all." if only is None else f"{seconds:.0f} s for the rows rerun ({only!r}; --only)."),
        "",
    ]
    for task in sorted({r["task"] for r in rows}, reverse=True):
        lines += [f"## {task}", "", "| SDE | method | " + " | ".join(f"nfe {b}" for b in budgets) + " |",
                  "|---|---|" + "---:|" * len(budgets)]  # fmt: skip
        for sde in SDES:
            for method in METHODS:
                cells = {r["budget"]: r for r in rows if (r["task"], r["sde"], r["method"]) == (task, sde, method)}
                if cells:
                    vals = [f"{cells[b]['ratio']:.1f}" if b in cells else "-" for b in budgets]
                    lines.append(f"| {sde} | {method} | " + " | ".join(vals) + " |")
        lines.append("")
    (RESULTS / f"{out}.md").write_text("\n".join(lines))
    fig, axes = plt.subplots(2, len(SDES), figsize=(5 * len(SDES), 8), sharey=True)
    for i, task in enumerate(("inpaint", "colorize")):
        for ax, sde in zip(axes[i], SDES, strict=True):
            for method in METHODS:
                pts = sorted(
                    (r["nfe"], r["ratio"]) for r in rows if (r["task"], r["sde"], r["method"]) == (task, sde, method)
                )
                if pts:
                    ax.plot(*zip(*pts, strict=True), marker="o", label=method)
            ax.axhline(1.0, color="k", lw=0.8, ls=":")
            ax.axhline(3.0, color="grey", lw=0.8, ls="--")
            ax.set(xscale="log", yscale="log", title=f"{task}, {sde}", xlabel="score evaluations per sample")
    axes[0][0].set_ylabel("FD / noise floor")
    axes[1][0].set_ylabel("FD / noise floor")
    axes[0][-1].legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(RESULTS / f"{out}.png", dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--n", type=int, default=2000, help="samples per run")
    parser.add_argument("--only", help="rerun only the methods whose name contains this; keep the other rows")
    parser.add_argument("--budgets", type=int, nargs="+", help="budgets instead of the default ladder")
    parser.add_argument("--seeds", type=int, nargs="+", help="average every cell over these seeds")
    parser.add_argument("--tasks", nargs="+", default=["inpaint", "colorize"], choices=["inpaint", "colorize"])
    parser.add_argument("--out", default="inpainting_accuracy", help="results/OUT.{csv,md,png}")
    args = parser.parse_args()
    torch.set_num_threads(1)
    start = time.perf_counter()
    rows = run(args.quick, args.n, args.only, args.budgets, args.seeds, tuple(args.tasks))
    if args.only is not None and (RESULTS / f"{args.out}.csv").exists():  # keep the other methods' rows
        with open(RESULTS / f"{args.out}.csv", newline="") as f:
            kept = [row for row in csv.DictReader(f) if args.only not in row["method"]]
        for row in kept:
            row.update({key: float(row[key]) for key in ("fd", "floor", "ratio", "seconds")})
            row.update({key: int(row[key]) for key in ("budget", "nfe", "steps")})
        rows = sorted(kept + rows, key=lambda r: (r["task"], r["sde"], list(METHODS).index(r["method"]), r["budget"]))
    write(rows, args.n, time.perf_counter() - start, args.only, args.out, args.seeds)


if __name__ == "__main__":
    main()
