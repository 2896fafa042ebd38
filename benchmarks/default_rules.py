"""Candidate default rules of ``unipc`` and ``dpm_solver`` on the random problem families of fast_solvers.py.

A rule gives, per budget, the UniPC and the DPM-Solver setting that ``sample(solver=...)`` would take by default.
The candidates are published settings: UniPC's code defaults (B(h) = h, time-uniform), its authors' advice for
low-resolution models (B(h) = e^h - 1, order 3, log-SNR), the diffusers port's defaults (order 2, B(h) = e^h - 1,
time-uniform) and both orders on the time-quadratic grid (DDIM's grid for low-resolution data, DPM-Solver's
``skip_type='time_quadratic'``); DPM-Solver++(2M) with lower-order final step on the log-SNR grid (the DPM-Solver
README for <= 10 steps) or the time-quadratic grid, 3M from 10, DPM-Solver-2M on the time-quadratic grid; and
``previous``, the library's defaults since commit d9ee16c (logistic grids with fitted floors and widths), rebuilt
from explicit grids (``today`` runs the library's defaults by name, a check that the two agree). ``defaults`` is, as in
fast_solvers.py, the best of the rule's two solvers and scoresde's other deterministic solvers with default options;
``recommended`` the best of the references' recommended settings. The other solvers' and the references' errors are
read from a stored fast_solvers.py CSV of the split (the problems, n and budgets too), so every rule is compared on
the very same starts; the rules' own solvers are run here (``today`` by name, with the library's defaults):

    PYTHONPATH=. python benchmarks/default_rules.py --csv benchmarks/results/fast_solvers_selection_s6base.csv

writes benchmarks/results/default_rules_<split>.md (per rule and budget: worst, median, met of defaults /
recommended, for the RMSE and the per-sample median error) with the provenance header.
"""

from __future__ import annotations

import argparse
import csv
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import fast_solvers as fs  # noqa: E402
import provenance  # noqa: E402

import scoresde  # noqa: E402
from scoresde.solvers import DPMSolver, UniPC, grids  # noqa: E402

RESULTS = Path(__file__).parent / "results"
OTHERS = ("ddim", "dpm_solver3", "edm_heun", "ode_rk4")  # scoresde's other default solvers, read from the CSV


def _grid(name: str, **kw):
    return lambda sde, n: (
        grids.logistic(sde, n, fs.EPS, **kw) if name == "logistic" else grids.make(name, sde, n, fs.EPS)
    )


def _previous_dpm(sde, n):
    width, floor = (1.75, 0.35) if n < 8 else (1.625, 0.425) if n < 15 else (1.5, 0.2)
    return grids.logistic(sde, n, fs.EPS, width=width, floor=floor)


UNIPC = {  # name -> (solver, grid) for a run of n steps
    "bh1 o3 time-uniform (UniPC code)": lambda n: (UniPC(3, "bh1"), _grid("uniform")),
    "bh2 o2 time-uniform (diffusers)": lambda n: (UniPC(2, "bh2"), _grid("uniform")),
    "bh1 o3 log-SNR": lambda n: (UniPC(3, "bh1"), _grid("log_snr")),
    "bh2 o3 log-SNR (authors, >= 10)": lambda n: (UniPC(3, "bh2"), _grid("log_snr")),
    "bh2 o2 time-quadratic": lambda n: (UniPC(2, "bh2"), _grid("quadratic")),
    "bh2 o3 time-quadratic": lambda n: (UniPC(3, "bh2"), _grid("quadratic")),
}
DPM = {
    "++2M lof log-SNR (README <= 10)": lambda n: (DPMSolver(2, "data", lower_order_final=True), _grid("log_snr")),
    "++3M lof log-SNR (README 15-50)": lambda n: (DPMSolver(3, "data", lower_order_final=True), _grid("log_snr")),
    "2M noise time-quadratic": lambda n: (DPMSolver(2, "noise", lower_order_final=False), _grid("quadratic")),
    "++2M lof time-quadratic": lambda n: (DPMSolver(2, "data", lower_order_final=True), _grid("quadratic")),
}


def rules() -> dict[str, callable]:
    """name -> (n -> (UniPC setting, DPM-Solver setting)). ``today`` is the library's rule, run by name."""
    few = lambda a, b: lambda n: a if n < 10 else b  # noqa: E731 - the published 10-step threshold
    uni_rule = few("bh1 o3 time-uniform (UniPC code)", "bh2 o3 log-SNR (authors, >= 10)")
    return {
        "fitted logistic grids (the defaults since d9ee16c), rebuilt": "previous",
        "today (the library's defaults, run by name)": "today",
        "time-quadratic <10 (UniPC bh2 o2, DPM-Solver++ 2M); >=10 UniPC authors, 2M noise quadratic": lambda n: (
            few("bh2 o2 time-quadratic", "bh2 o3 log-SNR (authors, >= 10)")(n),
            few("++2M lof time-quadratic", "2M noise time-quadratic")(n),
        ),
        "time-quadratic everywhere: UniPC bh2 o2 <10 / o3, DPM-Solver++ 2M <10 / 2M noise": lambda n: (
            few("bh2 o2 time-quadratic", "bh2 o3 time-quadratic")(n),
            few("++2M lof time-quadratic", "2M noise time-quadratic")(n),
        ),
        "s6: UniPC diffusers <10 / authors, DPM-Solver++ 2M log-SNR <10, 2M noise quadratic >=10": lambda n: (
            few("bh2 o2 time-uniform (diffusers)", "bh2 o3 log-SNR (authors, >= 10)")(n),
            few("++2M lof log-SNR (README <= 10)", "2M noise time-quadratic")(n),
        ),
        "all published log-SNR: UniPC bh1/bh2 o3, DPM-Solver++ 2M <=10 / 3M": lambda n: (
            few("bh1 o3 log-SNR", "bh2 o3 log-SNR (authors, >= 10)")(n),
            "++2M lof log-SNR (README <= 10)" if n <= 10 else "++3M lof log-SNR (README 15-50)",
        ),
        "UniPC code <10 (bh1 o3 time-uniform), DPM-Solver++ 2M log-SNR <10, 2M noise quadratic >=10": lambda n: (
            uni_rule(n),
            few("++2M lof log-SNR (README <= 10)", "2M noise time-quadratic")(n),
        ),
        "s6 UniPC, DPM-Solver++ 2M everywhere (log-SNR <10, quadratic >=10)": lambda n: (
            few("bh2 o2 time-uniform (diffusers)", "bh2 o3 log-SNR (authors, >= 10)")(n),
            few("++2M lof log-SNR (README <= 10)", "++2M lof time-quadratic")(n),
        ),
    }


def run(sde, score, x_T, exact, solver, times) -> tuple[float, float]:
    x, info = scoresde.sample(sde, score, None, start=x_T, solver=solver, times=times, eps=fs.EPS, denoise=False)
    return fs.rmse(x, exact), fs.median_error(x, exact)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--csv", required=True, help="a fast_solvers.py result CSV (its split, problems, n, budgets)")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    lines = [line for line in open(args.csv) if not line.startswith("#")]
    head = dict(line[2:].strip().split(": ", 1) for line in open(args.csv) if line.startswith("# ") and ": " in line)
    stored = list(csv.DictReader(lines))
    for r in stored:
        r["seed"], r["budget"] = int(r["seed"]), int(r["budget"])
        for k in ("rmse", "median"):
            r[k] = float(r[k]) if r[k] not in ("", "nan") else math.nan
    n, budgets, seeds = int(head["n"]), sorted({r["budget"] for r in stored}), sorted({r["seed"] for r in stored})
    errors = {}  # (seed, sde, nfe, "unipc"/"dpm", setting name) -> (rmse, median)
    for seed in seeds:
        _, data = fs.draw_problem(seed)
        for sname, sde in fs.sdes_for(data).items():
            score, x_T = data.score_fn(sde), fs.prior(data, sde, n, 7)
            exact = fs.exact_flow(data, sde, x_T)
            for nfe in budgets:
                for fam, table in (("unipc", UNIPC), ("dpm", DPM)):
                    for name, make in table.items():
                        solver, grid = make(nfe)
                        errors[seed, sname, nfe, fam, name] = run(sde, score, x_T, exact, solver, grid(sde, nfe))
                old_u = (UniPC(3, "bh1"), grids.logistic(sde, nfe, fs.EPS)) if nfe < 15 else (
                    UniPC(3, "bh2"), grids.uniform_log_snr(sde, nfe, fs.EPS))  # fmt: skip
                errors[seed, sname, nfe, "unipc", "previous"] = run(sde, score, x_T, exact, *old_u)
                old_d = (DPMSolver(2, "noise", lower_order_final=False), _previous_dpm(sde, nfe))
                errors[seed, sname, nfe, "dpm", "previous"] = run(sde, score, x_T, exact, *old_d)
                for fam, name in (("unipc", "unipc"), ("dpm", "dpm_solver")):  # the library's defaults, as run today
                    x, _ = scoresde.sample(sde, score, None, start=x_T, solver=name, nfe=nfe, eps=fs.EPS, denoise=False)
                    errors[seed, sname, nfe, fam, "today"] = (fs.rmse(x, exact), fs.median_error(x, exact))
            print(seed, sname, flush=True)
    out = [f"## Candidate default rules ({head['split']} split, {len(seeds)} problems x 3 SDEs, n = {n})", "",
           "defaults / recommended per budget: worst, median, met (RMSE | per-sample median error)", "",
           "| rule | " + " | ".join(f"{b} NFE" for b in budgets) + " |", "|---" * (len(budgets) + 1) + "|"]  # fmt: skip
    for label, rule in rules().items():
        cells = []
        for nfe in budgets:
            parts = []
            for metric, m in (("rmse", 0), ("median", 1)):
                ratios = []
                for seed in seeds:
                    for sname in ("vp", "subvp", "ve"):
                        mine = [r for r in stored if (r["seed"], r["sde"], r["budget"]) == (seed, sname, nfe)]
                        col = fs.columns(stored, seed, sname, nfe, metric)
                        others = [r[metric] for r in mine if r["family"] == "scoresde" and r["method"] in OTHERS]
                        if rule in ("today", "previous"):
                            own = [errors[seed, sname, nfe, f, rule][m] for f in ("unipc", "dpm")]
                        else:
                            u, d = rule(nfe)
                            own = [errors[seed, sname, nfe, "unipc", u][m], errors[seed, sname, nfe, "dpm", d][m]]
                        ratios.append(min(others + own) / col["recommended"])
                ratios.sort()
                met = sum(x <= fs.TARGETS["recommended"](nfe) * (1 + 1e-6) for x in ratios)
                parts.append(f"{ratios[-1]:.2f}, {ratios[len(ratios) // 2]:.2f}, {met}/{len(ratios)}")
            cells.append(" \\| ".join(parts))
        out.append(f"| {label} | " + " | ".join(cells) + " |")
    meta = provenance.record(split=head["split"], n=n, source=Path(args.csv).name, source_commit=head["commit"])
    text = "\n".join([*out, "", *(f"- {k}: {v}" for k, v in meta.items())]) + "\n"
    (RESULTS / f"default_rules_{head['split']}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
