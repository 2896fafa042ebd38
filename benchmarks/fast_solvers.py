"""Fast ODE samplers on random problem families, beside the published code: flow-map error at 5-20 NFE.

A problem is drawn at random from its seed (``draw_problem``) and run under every SDE (VP, sub-VP, VE with
sigma_max = the data's largest pairwise distance):

* **Gaussian family:** dimension log-uniform in [2, 128], standard deviations log-spaced over 1-3 decades below a
  largest one log-uniform in [0.3, 3], a random rotation and an offset mean;
* **mixture family:** dimension log-uniform in [2, 64], 2-12 isotropic modes with random weights, means spread with
  a scale log-uniform in [0.5, 4], mode widths log-uniform in [0.02, 0.5] of that spread.

Seeds below 1000 are the **selection split** (use them to choose settings); seeds from 1000 are the **held-out split**
(``--split heldout``): docs and README quote only it. Same protocol for every method: exact oracle score, float64,
x_T ~ p_T (seed 7 of the problem), T to eps = 1e-3, no denoising. The error is the RMSE to the exact flow map of the
same x_T (closed form for Gaussians; dopri5 at rtol = atol = 1e-10 for mixtures).

Columns, per problem, SDE and budget: ``defaults`` (the best of scoresde's deterministic solvers with default
options), ``recommended`` (the best of each reference package's defaults and documented recommendations,
:func:`reference_recommended`), ``hindsight`` (the best of all ~90 reference configurations, picked per problem on
the evaluation starts themselves) and ``optimized`` (the better of :func:`scoresde.optimize_schedule` for ``unipc``
and for ``dpm_solver``, each choosing its own variant and grid from 64 pilot starts drawn from another seed than the
evaluation starts, within its default budget of 5,000 nfe score evaluations; the pilot cost and the chosen variant
are stored per row). Targets: defaults <= 2x recommended at 6 NFE and <= 1x at 10 and 20; optimized <= 1x
hindsight.

    SCORESDE_REFERENCE_ROOT=SNAPSHOTS_DIR PYTHONPATH=. python benchmarks/fast_solvers.py --split heldout

writes benchmarks/results/fast_solvers_<split>.csv (every row, with the provenance header) and .md (the summary).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
import provenance  # noqa: E402
import reference_solvers  # noqa: E402

import scoresde  # noqa: E402
from scoresde.oracle import Gaussian, GaussianMixture  # noqa: E402
from scoresde.solvers import DPMSolver, UniPC, optimize_schedule  # noqa: E402

RESULTS = Path(__file__).parent / "results"
EPS = 1e-3
SPLITS = {"selection": 0, "heldout": 1000}
DEFAULTS = {  # scoresde's deterministic solvers with their default options: name -> sample() options
    "dpm_solver": {"solver": "dpm_solver"},
    "unipc": {"solver": "unipc"},
    "ddim": {"solver": "ddim"},
    "dpm_solver3": {"solver": "dpm_solver3"},
    "edm_heun": {"solver": "edm_heun"},
    "ode_rk4": {"solver": "ode", "method": "rk4"},
}
OPTIMIZED = {  # solvers whose schedules (and variants: prediction, B(h), order, lower-order final) are optimised
    "unipc": UniPC,
    "dpm_solver": DPMSolver,
}
PILOTS = 64  # pilot starts per optimisation (half fit the descents, half check them)
REFERENCE_DEFAULTS = {
    "dpm-solver": "dpmsolver++ multistep order=2 time_uniform",
    "unipc": "data_prediction bh1 order=2 time_uniform",
    "k-diffusion": "dpmpp_2m karras",
}
TARGETS = {"recommended": lambda nfe: 2.0 if nfe < 10 else 1.0, "hindsight": lambda nfe: 1.0}


def reference_recommended(nfe: int) -> list[tuple[str, str]]:
    """(family, configuration) that each package's own documentation recommends for this problem at ``nfe``.

    Unconditional sampling of a low-dimensional (low-resolution, pixel-space-like) model:
      - DPM-Solver (README "Suggestions for the Detailed Settings"): 2nd-order multistep DPM-Solver++ for steps <= 10,
        3rd-order multistep DPM-Solver or DPM-Solver++ for 15-50 steps; ``DPM_Solver.sample`` docstring: single-step
        order 3 ("DPM-Solver-fast") for unconditional sampling; skip type ``logSNR`` for low-resolution images.
      - UniPC (example/score_sde_pytorch and the UniPCMultistepScheduler docstring of their diffusers port): data
        prediction, order 3, multistep, logSNR, lower_order_final; "bh1 for unconditional sampling when steps < 10,
        and bh2 otherwise".
      - k-diffusion (README, sample.py, train.py): DPM-Solver++(2S), (2M), LMS and (2M) SDE at eta = 0 with the Heun
        term on get_sigmas_karras(rho=7), and Heun on the same grid (Karras et al. 2022, Alg. 1).
    """
    out = [("dpm-solver", "dpmsolver++ multistep order=2 logSNR")] if nfe <= 10 else []
    if nfe > 10:
        out += [("dpm-solver", f"{a} multistep order=3 logSNR") for a in ("dpmsolver", "dpmsolver++")]
    out += [("dpm-solver", f"{a} singlestep order=3 logSNR") for a in ("dpmsolver", "dpmsolver++")]
    out += [("unipc", "data_prediction bh1 order=3 logSNR")]
    out += [("unipc", "data_prediction bh2 order=3 logSNR")] if nfe >= 10 else []
    return out + [("k-diffusion", f"{m} karras") for m in ("dpmpp_2m", "dpmpp_2s", "lms", "dpmpp_2m_sde_heun", "heun")]


def _log_uniform(g: torch.Generator, lo: float, hi: float) -> float:
    return math.exp(
        math.log(lo) + (math.log(hi) - math.log(lo)) * float(torch.rand((), generator=g, dtype=torch.float64))
    )


def draw_problem(seed: int) -> tuple[str, Gaussian | GaussianMixture]:
    """A (description, data distribution) drawn from ``seed``: even seeds Gaussians, odd seeds mixtures."""
    g = torch.Generator().manual_seed(seed)
    if seed % 2 == 0:
        dim = round(_log_uniform(g, 2, 128))
        top, decades = _log_uniform(g, 0.3, 3.0), 1 + 2 * float(torch.rand((), generator=g, dtype=torch.float64))
        q, r = torch.linalg.qr(torch.randn(dim, dim, generator=g, dtype=torch.float64))
        q = q * torch.sign(torch.diagonal(r))
        var = torch.logspace(2 * math.log10(top) - 2 * decades, 2 * math.log10(top), dim, dtype=torch.float64)
        cov = (q * var) @ q.T
        mean = 0.5 * top * torch.randn(dim, generator=g, dtype=torch.float64)
        return f"gauss d={dim} std={top / 10**decades:.2g}-{top:.2g}", Gaussian(mean, cov=0.5 * (cov + cov.T))
    dim, k = round(_log_uniform(g, 2, 64)), int(torch.randint(2, 13, (), generator=g))
    spread = _log_uniform(g, 0.5, 4.0)
    width = spread * _log_uniform(g, 0.02, 0.5)
    means = spread * torch.randn(k, dim, generator=g, dtype=torch.float64)
    weights = 0.5 + torch.rand(k, generator=g, dtype=torch.float64)
    desc = f"mix d={dim} k={k} spread={spread:.2g} width={width:.2g}"
    return desc, GaussianMixture([Gaussian(mu, std=width) for mu in means], weights)


def sdes_for(data) -> dict[str, scoresde.SDE]:
    """VP, sub-VP and VE with sigma_max = the largest pairwise distance of the data (Song & Ermon 2020)."""
    x = data.sample(2000, generator=torch.Generator().manual_seed(99), dtype=torch.float64)
    return {
        "vp": scoresde.VPSDE(),
        "subvp": scoresde.SubVPSDE(),
        "ve": scoresde.VESDE(0.01, float(torch.cdist(x, x).max())),
    }


def exact_flow(data, sde: scoresde.SDE, x_T: torch.Tensor) -> torch.Tensor:
    if isinstance(data, Gaussian):
        return data.flow(sde, x_T, sde.T, EPS)
    out, _ = scoresde.sample(sde, data.score_fn(sde), None, start=x_T, solver="ode", rtol=1e-10, atol=1e-10, eps=EPS,
                             denoise=False)  # fmt: skip
    return out


def prior(data, sde: scoresde.SDE, n: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    if isinstance(data, GaussianMixture):
        return GaussianMixture([c.marginal(sde, sde.T) for c in data.components], data.weights).sample(
            n, generator=gen, dtype=torch.float64
        )
    return data.marginal(sde, sde.T).sample(n, generator=gen, dtype=torch.float64)


def rmse(x: torch.Tensor, exact: torch.Tensor) -> float:
    return float((x.double() - exact).pow(2).mean().sqrt())


def median_error(x: torch.Tensor, exact: torch.Tensor) -> float:
    """Median over samples of the per-sample RMS error: robust to the few mixture starts near a mode boundary, where
    a 1e-6 difference early decides the mode and one sample's error of ~the mode spacing dominates the RMSE."""
    return float((x.double() - exact).pow(2).mean(1).sqrt().median())


def run_problem(seed: int, budgets: list[int], n: int, modules: dict, optimize: list[str]) -> list[dict]:
    """Every row of one problem (all SDEs and budgets)."""
    desc, data = draw_problem(seed)
    rows = []
    for sname, sde in sdes_for(data).items():
        score = data.score_fn(sde)
        x_T = prior(data, sde, n, 7)
        exact = exact_flow(data, sde, x_T)
        for nfe in budgets:
            base = dict(seed=seed, problem=desc, sde=sname, budget=nfe)
            for family, config, fn in reference_solvers.runs(modules, sde, score, nfe, EPS):
                try:
                    x, spent = fn(x_T)
                    err, med = (rmse(x, exact), median_error(x, exact)) if spent <= nfe else (math.nan, math.nan)
                except Exception as e:  # noqa: BLE001 - a reference configuration that fails is reported, not fatal
                    spent, err, med = -1, math.nan, math.nan
                    print(f"  {family} {config}: failed ({type(e).__name__})", flush=True)
                rows.append(base | dict(family=family, method=config, nfe=spent, rmse=err, median=med))
            for name, options in DEFAULTS.items():
                x, info = scoresde.sample(sde, score, None, start=x_T, nfe=nfe, eps=EPS, denoise=False, **options)
                rows.append(base | dict(family="scoresde", method=name, nfe=info.nfe, rmse=rmse(x, exact),
                                        median=median_error(x, exact)))  # fmt: skip
            for name in optimize:
                make = OPTIMIZED[name]
                schedule = optimize_schedule(sde, score, (PILOTS, data.dim), solver=make(), nfe=nfe, eps=EPS,
                                             generator=torch.Generator().manual_seed(11))  # fmt: skip
                x, info = scoresde.sample(sde, score, None, start=x_T, solver=schedule.solver_for(make()), nfe=nfe,
                                          eps=EPS, denoise=False, times=schedule.times)  # fmt: skip
                errors = dict(rmse=rmse(x, exact), median=median_error(x, exact))
                chosen = {k: v for k, v in schedule.options.items() if schedule.requested.get(k) != v}
                rows.append(base | dict(family="optimized", method=name, nfe=info.nfe, **errors,
                                        pilot_evaluations=schedule.pilot_evaluations, variant=chosen,
                                        start=schedule.start))  # fmt: skip
            print(f"{seed:5d} {desc:40s} {sname:5s} nfe={nfe:3d} {summary(rows, seed, sname, nfe)}", flush=True)
    return rows


def _best(rows: list[dict], keep, metric: str = "rmse") -> float:
    errs = [r[metric] for r in rows if keep(r) and not math.isnan(r[metric])]
    return min(errs) if errs else math.nan


def columns(rows: list[dict], seed: int, sde: str, nfe: int, metric: str = "rmse") -> dict[str, float]:
    """Best error (``metric``: "rmse" or "median") per column for one problem, SDE and budget."""
    mine = [r for r in rows if r["seed"] == seed and r["sde"] == sde and r["budget"] == nfe]
    rec = set(REFERENCE_DEFAULTS.items()) | set(reference_recommended(nfe))
    return {
        "defaults": _best(mine, lambda r: r["family"] == "scoresde", metric),
        "recommended": _best(mine, lambda r: (r["family"], r["method"]) in rec, metric),
        "hindsight": _best(mine, lambda r: r["family"] not in ("scoresde", "optimized"), metric),
        "optimized": _best(mine, lambda r: r["family"] == "optimized", metric),
    }


def summary(rows, seed, sde, nfe) -> str:
    c = columns(rows, seed, sde, nfe)
    return (f"defaults/recommended {c['defaults'] / c['recommended']:.2f}  "
            f"optimized/hindsight {c['optimized'] / c['hindsight']:.2f}")  # fmt: skip


def report(rows: list[dict], budgets: list[int], split: str, metric: str = "rmse") -> list[str]:
    """The markdown summary: per budget, the ratios' worst case and the count of problems meeting each target."""
    keys = sorted({(r["seed"], r["sde"]) for r in rows})
    title = f"{split} split, {len(keys)} problem x SDE pairs, error: {metric}"
    lines = [f"## Fast ODE samplers on random problem families ({title})", "",
             "| NFE | defaults / recommended: worst, median, met | optimized / hindsight: worst, median, met |",
             "|---|---|---|"]  # fmt: skip
    for nfe in budgets:
        cells = []
        for num, den in (("defaults", "recommended"), ("optimized", "hindsight")):
            cols = [columns(rows, s, d, nfe, metric) for s, d in keys]
            ratios = sorted(c[num] / c[den] for c in cols)
            ratios = [r for r in ratios if not math.isnan(r)]
            if not ratios:
                cells.append("n/a")
                continue
            met = sum(r <= TARGETS[den](nfe) * (1 + 1e-6) for r in ratios)
            cells.append(f"{ratios[-1]:.2f}, {ratios[len(ratios) // 2]:.2f}, {met}/{len(ratios)}")
        lines.append(f"| {nfe} | {cells[0]} | {cells[1]} |")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--split", choices=sorted(SPLITS), default="selection")
    parser.add_argument("--problems", type=int, default=6, help="problem draws (each under VP, sub-VP and VE)")
    parser.add_argument("--budgets", type=int, nargs="+", default=[6, 10, 20])
    parser.add_argument("--n", type=int, default=200, help="evaluation starts x_T per problem")
    parser.add_argument("--no-optimize", action="store_true", help="skip the optimised schedules")
    parser.add_argument("--optimized", nargs="+", choices=sorted(OPTIMIZED), default=sorted(OPTIMIZED))
    parser.add_argument("--tag", default="", help="suffix of the result files")
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)  # SDE constants and the references' time grids in float64
    modules = reference_solvers.load()
    pins = {k: v[1] for k, v in reference_solvers.SOURCES.items() if k in modules}
    optimized = [] if args.no_optimize else args.optimized
    rows = []
    for seed in range(SPLITS[args.split], SPLITS[args.split] + args.problems):
        rows += run_problem(seed, args.budgets, args.n, modules, optimized)
        # written after every problem, so a run stopped early keeps what it measured (``problems_done`` says how much)
        meta = provenance.record(split=args.split, n=args.n, optimized=optimized, references=pins,
                                 problems_done=seed - SPLITS[args.split] + 1)  # fmt: skip
        provenance.write_csv(RESULTS / f"fast_solvers_{args.split}{args.tag}.csv", rows, meta)
        lines = [*report(rows, args.budgets, args.split), "", *report(rows, args.budgets, args.split, "median")]
        text = "\n".join([*lines, "", *(f"- {k}: {v}" for k, v in meta.items())]) + "\n"
        (RESULTS / f"fast_solvers_{args.split}{args.tag}.md").write_text(text)
    print(text)


if __name__ == "__main__":
    main()
