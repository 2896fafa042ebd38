"""Accuracy of every sampler against the analytic oracle, and the solvers' overhead per step.

Accuracy: for a 64-D anisotropic Gaussian and the 2-D 8-mode mixture (scoresde.oracle), each under VP, sub-VP
and VE, every solver runs with the EXACT score at a ladder of step counts from the same exact x_T ~ p_T. The
error is the Frechet distance (the FID formula, in data space) between the moments of the samples at eps and
the exact moments of p_eps (no final denoising); the noise floor is the mean Frechet distance of as many exact
samples. For the mixture the total-variation distance of the 8 mode weights is reported too, and for the
deterministic solvers on the Gaussian the RMSE to the exact flow map of the same x_T (their Frechet distance
converges to that of the flow-mapped x_T sample, one draw from the noise floor's distribution).

Overhead: wall time per step minus the score's own time (measured on its own on the same input), on the
cheap analytic score and on a small MLP defined here; plus the time of a bare hand-written loop doing only
the update's tensor arithmetic (the floor any solver can reach).

    python benchmarks/solver_accuracy.py            # full run (about 10 minutes on one thread)
    python benchmarks/solver_accuracy.py --quick    # smoke run (about a minute)

Writes benchmarks/results/solver_accuracy.csv, solver_accuracy.png, solver_overhead.csv and solver_accuracy.md.
Everything runs with torch.set_num_threads(1) on the CPU.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import platform
import sys
import time
from pathlib import Path

import matplotlib
import torch
from torch import nn

import scoresde
from scoresde.oracle import GaussianMixture, anisotropic_gaussian, eight_gaussians, gaussian_mean_cov

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RESULTS = Path(__file__).parent / "results"
EPS = 1e-3

# name -> (sample() options, ladder kind); "steps" ladders vary steps, "fast" the same with few steps (EDM,
# DPM-Solver), "each" varies ALD's steps per level, "tol" varies the adaptive tolerance.
SOLVERS = {
    "euler_maruyama": ({"solver": "euler_maruyama"}, "steps"),
    "reverse_diffusion": ({"solver": "reverse_diffusion"}, "steps"),
    "ancestral": ({"solver": "ancestral"}, "steps"),
    "pc_langevin": ({"solver": "pc", "predictor": "reverse_diffusion", "corrector": "langevin"}, "steps"),
    "pc_annealed": ({"solver": "pc", "predictor": "reverse_diffusion", "corrector": "annealed_langevin"}, "steps"),
    "ald": ({"solver": "ald"}, "each"),
    "ode_euler": ({"solver": "ode", "method": "euler"}, "steps"),
    "ode_heun": ({"solver": "ode", "method": "heun"}, "steps"),
    "ode_rk4": ({"solver": "ode", "method": "rk4"}, "steps"),
    "ode_dopri5": ({"solver": "ode", "method": "dopri5"}, "tol"),
    "edm_heun": ({"solver": "edm_heun"}, "fast"),
    "dpm_solver2": ({"solver": "dpm_solver2"}, "fast"),
    "dpm_solver3": ({"solver": "dpm_solver3"}, "fast"),
    "dpm_solver": ({"solver": "dpm_solver"}, "fast"),
    "unipc": ({"solver": "unipc"}, "fast"),
    "ddim": ({"solver": "ddim"}, "fast"),
}


# --------------------------------------------------------------------------------------------- statistics
def _sqrtm(a: torch.Tensor) -> torch.Tensor:
    w, v = torch.linalg.eigh(0.5 * (a + a.T))
    return (v * w.clamp_min(0).sqrt()) @ v.T


def frechet(mu1, cov1, mu2, cov2) -> float:
    r1 = _sqrtm(cov1)
    return float((mu1 - mu2).pow(2).sum() + torch.trace(cov1 + cov2 - 2 * _sqrtm(r1 @ cov2 @ r1)))


def moments(x: torch.Tensor):
    x = x.reshape(x.shape[0], -1).double()
    return x.mean(0), torch.atleast_2d(torch.cov(x.T))


class Problem:
    """An oracle distribution under one SDE: exact p_T draws, exact p_eps moments, the noise floor."""

    def __init__(self, name: str, data, sde: scoresde.SDE, n: int, seed: int = 0):
        self.name, self.data, self.sde, self.n = name, data, sde, n
        self.mixture = isinstance(data, GaussianMixture)
        at = lambda t: self._marginal(t)  # noqa: E731
        gen = torch.Generator().manual_seed(seed)
        self.x_T = at(sde.T).sample(n, generator=gen)
        target = at(EPS)
        self.mean, self.cov = target.mean_cov() if self.mixture else gaussian_mean_cov(target)
        floors = [frechet(*moments(target.sample(n, generator=gen)), self.mean, self.cov) for _ in range(8)]
        self.floor = sum(floors) / len(floors)

    def _marginal(self, t: float):
        if self.mixture:
            return GaussianMixture([c.marginal(self.sde, t) for c in self.data.components], self.data.weights)
        return self.data.marginal(self.sde, t)

    def error(self, x: torch.Tensor) -> tuple[float, float]:
        """Frechet distance to the exact p_eps moments; mode-weight TV distance for the mixture (else nan)."""
        fd = frechet(*moments(x), self.mean, self.cov)
        if not self.mixture:
            return fd, math.nan
        counts = torch.bincount(self.data.responsibilities(None, x.double()).argmax(1), minlength=8).double()
        return fd, 0.5 * float((counts / len(x) - self.data.weights).abs().sum())


def ve_sigma_max(data, n: int = 2000) -> float:
    """Song & Ermon (2020) technique 1: sigma_max = the largest pairwise distance of the data."""
    x = data.sample(n, generator=torch.Generator().manual_seed(99)).double().reshape(n, -1)
    return float(torch.cdist(x, x).max())


def accuracy(quick: bool) -> list[dict]:
    n = 500 if quick else 2000
    ladder = [20, 200] if quick else [10, 30, 100, 300, 1000]
    ode_ladder = [5, 50] if quick else [3, 10, 30, 100, 300]
    each_ladder = [2, 20] if quick else [1, 3, 10, 30, 100]
    tols = [1e-2, 1e-4] if quick else [1e-2, 1e-3, 1e-4, 1e-5, 1e-6]
    fast_ladder = [5, 20] if quick else [3, 5, 10, 20, 50]
    rows = []
    for pname, data in (("gaussian64", anisotropic_gaussian(64)), ("mixture8", eight_gaussians())):
        sdes = {"vp": scoresde.VPSDE(), "subvp": scoresde.SubVPSDE(), "ve": scoresde.VESDE(0.01, ve_sigma_max(data))}
        for sname, sde in sdes.items():
            prob = Problem(pname, data, sde, n)
            score = data.score_fn(sde)
            for solver, (options, kind) in SOLVERS.items():
                if kind == "tol":
                    settings = [({"rtol": tol, "atol": tol}, f"tol={tol:g}") for tol in tols]
                elif kind == "each":
                    settings = [({"n_steps_each": k}, f"levels=10,each={k}") for k in each_ladder]
                else:
                    steps = {"steps": ode_ladder if solver.startswith("ode") else ladder, "fast": fast_ladder}[kind]
                    settings = [({"steps": s}, "") for s in steps]
                for extra, label in settings:
                    gen = torch.Generator().manual_seed(1)
                    x, info = scoresde.sample(sde, score, None, start=prob.x_T, generator=gen, denoise=False,
                                              **options, **extra)  # fmt: skip
                    fd, tv = prob.error(x)
                    flow_rmse = math.nan  # deterministic solvers on the Gaussian: distance to the exact flow map
                    if not prob.mixture and (solver.startswith(("ode", "edm", "dpm", "unipc", "ddim"))):
                        exact = data.flow(sde, prob.x_T.double(), sde.T, EPS)
                        flow_rmse = float((x.double() - exact).pow(2).mean().sqrt())
                    rows.append(dict(solver=solver, sde=sname, problem=pname, steps=info.steps, setting=label,
                                     nfe=info.nfe, error=fd, noise_floor=prob.floor, mode_weight_tv=tv,
                                     flow_rmse=flow_rmse, wall_time=info.wall_time))  # fmt: skip
                    print(f"{pname:10s} {sname:5s} {solver:17s} {label or info.steps!s:18s} nfe={info.nfe:5d} "
                          f"FD/floor={fd / prob.floor:9.2f} {info.wall_time:6.2f}s", flush=True)  # fmt: skip
    return rows


# --------------------------------------------------------------------------------------------- overhead
class SmallMLP(nn.Module):
    """A small score network (3 hidden layers of 256, SiLU, time appended to the input): ~0.15 M parameters."""

    def __init__(self, dim: int, width: int = 256):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(dim + 1, width), nn.SiLU(), nn.Linear(width, width), nn.SiLU(),
                                 nn.Linear(width, width), nn.SiLU(), nn.Linear(width, dim))  # fmt: skip

    def forward(self, x, t):
        return self.net(torch.cat([x, t[:, None]], 1))


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _min_time(fn, reps: int, device: torch.device) -> float:
    """Smallest wall time of ``reps`` calls of ``fn`` (after one warm-up): robust on a shared machine."""
    fn()
    best = math.inf
    for _ in range(reps):
        _sync(device)
        start = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - start)
    return best


def bare_em_loop(sde, score_fn, x, steps):
    """Euler-Maruyama written by hand with precomputed Python-float coefficients: the arithmetic floor."""
    t = torch.linspace(sde.T, EPS, steps + 1, dtype=torch.float64)
    f, g2, dt = sde.f(t).tolist(), sde.g2(t).tolist(), (t[:-1] - t[1:]).tolist()
    times = t.to(x)
    for i in range(steps):
        s = score_fn(x, times[i].expand(x.shape[0]))
        x = x * (1 - f[i] * dt[i]) + (g2[i] * dt[i]) * s + math.sqrt(g2[i] * dt[i]) * torch.randn_like(x)
    return x


def _overhead_row(device, score: str, solver: str, nfe_per_step: float, per_nfe: float, per_call: float) -> dict:
    over = per_nfe - per_call
    return dict(device=device.type, score=score, solver=solver, nfe_per_step=nfe_per_step,
                time_per_step_us=per_nfe * 1e6, score_per_call_us=per_call * 1e6, overhead_per_step_us=over * 1e6,
                overhead_fraction=over / per_nfe)  # fmt: skip


def overhead(quick: bool, device: torch.device) -> list[dict]:
    sde, dim, batch, steps = scoresde.VPSDE(), 64, 256, (100 if quick else 400)
    data = anisotropic_gaussian(dim)
    torch.manual_seed(0)
    mlp = SmallMLP(dim).to(device).eval()
    free = -0.1 * torch.randn(batch, dim, device=device)
    # "free" returns a precomputed tensor: its time per NFE is the solver's own cost, measured directly
    scores = {"free": lambda x, t: free, "oracle": data.score_fn(sde), "mlp": lambda x, t: mlp(x, t)}
    configs = {
        "euler_maruyama": {"solver": "euler_maruyama"},
        "ancestral": {"solver": "ancestral"},
        "pc_langevin": {"solver": "pc"},
        "ald": {"solver": "ald", "n_steps_each": steps // 10},
        "ode_euler": {"solver": "ode", "method": "euler"},
        "ode_rk4": {"solver": "ode", "method": "rk4"},
        "dpm_solver3": {"solver": "dpm_solver3"},
    }
    rows = []
    x_T = torch.randn(batch, dim, device=device)
    t_mid = torch.full((batch,), 0.5, device=device)
    reps = 3 if quick else 7
    for sname, score in scores.items():
        with torch.no_grad():
            per_call = _min_time(lambda score=score: [score(x_T, t_mid) for _ in range(20)], reps, device) / 20
            bare = _min_time(lambda score=score: bare_em_loop(sde, score, x_T, steps), reps, device) / steps
        rows.append(_overhead_row(device, sname, "bare_em_loop", 1, bare, per_call))
        for solver, options in configs.items():
            n = 10 if solver == "ald" else steps
            run = lambda score=score, n=n, options=options: scoresde.sample(  # noqa: E731
                sde, score, None, start=x_T, steps=n, denoise=False, **options
            )
            nfe = run()[1].nfe
            per_step = _min_time(run, reps, device) / nfe  # per score evaluation, comparable across solvers
            over = per_step - per_call
            rows.append(_overhead_row(device, sname, solver, nfe / n, per_step, per_call))
            print(f"overhead {sname:6s} {solver:15s} {per_step * 1e6:8.1f} us/NFE, score {per_call * 1e6:8.1f} us, "
                  f"solver {over * 1e6:7.1f} us ({100 * over / per_step:5.1f}%)", flush=True)  # fmt: skip
    return rows


# --------------------------------------------------------------------------------------------- output
def write_csv(path: Path, rows: list[dict]) -> None:
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def plot(rows: list[dict], path: Path) -> None:
    problems, sdes = ["gaussian64", "mixture8"], ["vp", "subvp", "ve"]
    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5), sharex=True)
    for r, problem in enumerate(problems):
        for c, sde in enumerate(sdes):
            ax = axes[r, c]
            ax.set_prop_cycle(color=plt.cm.tab20.colors[: len(SOLVERS)])
            sel = [row for row in rows if row["problem"] == problem and row["sde"] == sde]
            for solver in SOLVERS:
                pts = sorted((row["nfe"], row["error"]) for row in sel if row["solver"] == solver)
                if pts:
                    ax.loglog(*zip(*pts, strict=True), marker="o", ms=3, label=solver)
            if sel:
                ax.axhline(sel[0]["noise_floor"], color="k", ls="--", lw=1, label="noise floor")
            ax.set_title(f"{problem}, {sde}")
            ax.set_xlabel("score evaluations (NFE)")
            ax.set_ylabel("Frechet distance to exact p_eps")
    axes[0, 0].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def _accuracy_table(acc: list[dict]) -> list[str]:
    keys = [(p, s) for p in ("gaussian64", "mixture8") for s in ("vp", "subvp", "ve")]
    lines = [
        "Error / noise floor (Frechet distance of the sample moments to the exact p_eps moments, divided by that of "
        "as many exact samples) at the largest setting of each ladder, NFE in brackets; then the fewest NFE that "
        "reached 2x the floor (- if none did).",
        "",
        "| solver | " + " | ".join(f"{p} {s}" for p, s in keys) + " |",
        "|---" * (len(keys) + 1) + "|",
    ]
    for solver in SOLVERS:
        cells = []
        for p, s in keys:
            sel = [r for r in acc if r["solver"] == solver and r["problem"] == p and r["sde"] == s]
            if not sel:
                cells.append("-")
                continue
            last = max(sel, key=lambda r: r["nfe"])
            good = [r["nfe"] for r in sel if r["error"] <= 2 * r["noise_floor"]]
            cells.append(f"{last['error'] / last['noise_floor']:.2f} ({last['nfe']}); {min(good) if good else '-'}")
        lines.append(f"| {solver} | " + " | ".join(cells) + " |")
    return lines


def _overhead_table(over: list[dict]) -> list[str]:
    lines = [
        f"Overhead per score evaluation on {over[0]['device']} (64-D, batch 256, VP; min over repeats): wall time per "
        "NFE minus the score's own time (the 'free' score returns a precomputed tensor, so its row is the solver's "
        "cost itself); bare_em_loop is a hand-written Euler-Maruyama loop (the arithmetic floor).",
        "",
        "| score | solver | us / NFE | score us | solver us | solver share |",
        "|---|---|---|---|---|---|",
    ]
    for r in over:
        lines.append(
            f"| {r['score']} | {r['solver']} | {r['time_per_step_us']:.1f} | {r['score_per_call_us']:.1f} | "
            f"{r['overhead_per_step_us']:.1f} | {100 * r['overhead_fraction']:.1f}% |"
        )
    return lines


def markdown(acc: list[dict], over: list[dict], machine: str, meta: dict | None = None) -> str:
    lines = [f"Machine: {machine}; torch {torch.__version__}, torch.set_num_threads(1).", ""]
    if acc:
        lines += _accuracy_table(acc) + [""]
    if over:
        lines += _overhead_table(over)
    if meta:
        lines += ["", *(f"- {k}: {v}" for k, v in meta.items())]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="short ladders and 500 samples (smoke run)")
    parser.add_argument("--overhead-only", action="store_true", help="only the overhead measurement")
    parser.add_argument("--accuracy-only", action="store_true", help="only the accuracy ladders")
    parser.add_argument("--device", default="cpu", help="device of the overhead measurement (accuracy runs on CPU)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    device = torch.device(args.device)
    machine = f"{platform.processor() or platform.machine()}, {platform.system()}, {os.cpu_count()} cores"
    if device.type == "cuda":
        machine += f", {torch.cuda.get_device_name(device)}"
    start = time.perf_counter()
    suffix = ("_quick" if args.quick else "") + ("" if device.type == "cpu" else f"_{device.type}")
    if not args.accuracy_only:
        over = overhead(args.quick, device)
        write_csv(args.out / f"solver_overhead{suffix}.csv", over)
        (args.out / f"solver_overhead{suffix}.md").write_text(markdown([], over, machine))
    if not args.overhead_only:
        acc = accuracy(args.quick)
        sys.path.insert(0, str(Path(__file__).parent))
        import provenance  # noqa: PLC0415 - benchmarks/ is not a package

        meta = provenance.record(threads=1)
        provenance.write_csv(args.out / f"solver_accuracy{suffix}.csv", acc, meta)
        plot(acc, args.out / f"solver_accuracy{suffix}.png")
        (args.out / f"solver_accuracy{suffix}.md").write_text(markdown(acc, [], machine, meta))
    print(f"done in {time.perf_counter() - start:.0f} s; results in {args.out}")


if __name__ == "__main__":
    main()
