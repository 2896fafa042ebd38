"""Accuracy, NFE and wall time of probability-flow likelihoods on the analytic oracle problems.

For each problem (64-D anisotropic Gaussian, 2-D eight-Gaussian mixture), SDE (VP, sub-VP, VE with a
data-scaled sigma_max, VE with sigma_max = 1), divergence (exact, Rademacher, Gaussian; one probe), tolerance
(rtol = atol) and step control (one step size for the batch, the default, or ``per_sample``), it solves the augmented
ODE for the same test points (float64) and reports:

* solver error: |log p - log p_perfect| / D in nats/dim, where log p_perfect is what a perfect solver returns
  (Gaussian: the closed form ``ode_log_prob``; mixture: a float64 solve at rtol = atol = 1e-10 with the exact
  trace, which the test suite checks against scipy's DOP853). For Hutchinson estimators the signed mean error
  (the bias, ~0) is reported next to the per-sample spread.
* model gap, separate from the solver: log p_perfect - log p_0(x) (the TRUE data log-density), split into the
  prior mismatch log N(z; 0, prior_std^2 I) - log p_T(z) at T and the eps term log p_eps(x) - log p_0(x).

Run: ``python benchmarks/likelihood_accuracy.py [--quick]``; writes CSV, markdown and PNG to benchmarks/results/.
Single-threaded (torch.set_num_threads(1)).
"""

from __future__ import annotations

import argparse
import itertools
import math
import platform
import time
from pathlib import Path

import torch

import scoresde
from scoresde import log_likelihood
from scoresde.oracle import anisotropic_gaussian, eight_gaussians

EPS = 1e-5
RESULTS = Path(__file__).resolve().parent / "results"


def _max_pairwise_distance(x: torch.Tensor) -> float:
    return float(torch.cdist(x, x).max())


def problems(n: int):
    """(name, distribution, test points (n, D) float64, sde dict) for both oracle problems."""
    out = []
    for name, dist in (("gaussian64", anisotropic_gaussian(64)), ("mixture2d", eight_gaussians())):
        gen = torch.Generator().manual_seed(0)
        x = dist.sample(n, generator=gen, dtype=torch.float64)
        train = dist.sample(2000, generator=gen, dtype=torch.float64)
        sigma_max = round(_max_pairwise_distance(train), 1)
        sdes = {
            "vp": scoresde.VPSDE(),
            "subvp": scoresde.SubVPSDE(),
            f"ve(smax={sigma_max})": scoresde.VESDE(sigma_min=0.01, sigma_max=sigma_max),
            "ve(smax=1)": scoresde.VESDE(sigma_min=0.01, sigma_max=1.0),
        }
        out.append((name, dist, x, sdes))
    return out


def perfect(dist, sde, x):
    """log p of a perfect solver and its latent z."""
    if hasattr(dist, "ode_log_prob"):
        return dist.ode_log_prob(sde, x, eps=EPS), dist.flow(sde, x, EPS, sde.T)
    ref = log_likelihood(sde, dist.score_fn(sde), x, divergence="exact", rtol=1e-10, atol=1e-10, eps=EPS)
    return ref.logp, ref.z


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="16 points, tolerances 1e-3 and 1e-5, one probe only")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    n = 16 if args.quick else 128
    tols = (1e-3, 1e-5) if args.quick else (1e-3, 1e-4, 1e-5, 1e-7)
    divergences = [("exact", 1), ("rademacher", 1), ("gaussian", 1)] + ([] if args.quick else [("rademacher", 4)])
    rows = []
    warm = anisotropic_gaussian(4)  # one untimed solve first: the first call pays for lazy initialisation
    log_likelihood(scoresde.VPSDE(), warm.score_fn(scoresde.VPSDE()), warm.sample(2, dtype=torch.float64))
    for pname, dist, x, sdes in problems(n):
        dim = x[0].numel()
        true_logp = dist.log_prob(x)
        for sname, sde in sdes.items():
            ref_logp, ref_z = perfect(dist, sde, x)
            prior_gap = (sde.prior_logp(ref_z) - dist.log_prob_t(sde, ref_z, sde.T)) / dim
            eps_gap = (dist.log_prob_t(sde, x, EPS) - true_logp) / dim
            for (div, probes), per_sample in itertools.product(divergences, (False, True)):
                for tol in tols:
                    gen = torch.Generator().manual_seed(1)  # the same probes at every tolerance
                    res = log_likelihood(sde, dist.score_fn(sde), x, divergence=div, n_probes=probes, rtol=tol,
                                         atol=tol, eps=EPS, generator=gen, per_sample=per_sample)  # fmt: skip
                    err = (res.logp - ref_logp) / dim
                    rows.append(
                        dict(
                            problem=pname,
                            dim=dim,
                            sde=sname,
                            divergence=div,
                            n_probes=probes,
                            per_sample=per_sample,
                            tol=tol,
                            n=n,
                            err_mean_abs=float(err.abs().mean()),
                            err_max_abs=float(err.abs().max()),
                            bias=float(err.mean()),
                            bias_se=float(err.std() / math.sqrt(n)),
                            nfe=res.nfe,
                            wall_s=res.wall_time,
                            nats_per_dim=float(-res.logp.mean() / dim),
                            true_nats_per_dim=float(-true_logp.mean() / dim),
                            prior_gap=float(prior_gap.mean()),
                            eps_gap=float(eps_gap.mean()),
                            model_gap=float(((ref_logp - true_logp) / dim).mean()),
                        )
                    )
                    r = rows[-1]
                    print(
                        f"{pname:10s} {sname:14s} {div:10s} x{probes}{' per sample' if per_sample else ''} "
                        f"tol={tol:.0e} |err|={r['err_mean_abs']:.2e} "
                        f"bias={r['bias']:+.1e}±{r['bias_se']:.1e} nfe={r['nfe']:4d} {r['wall_s']:.2f}s "
                        f"gap: prior={r['prior_gap']:+.2e} eps={r['eps_gap']:+.2e}",
                        flush=True,
                    )
    write(rows, args.out, args.quick)


def write(rows, out: Path, quick: bool) -> None:
    out.mkdir(parents=True, exist_ok=True)
    stem = "likelihood_accuracy" + ("_quick" if quick else "")
    keys = list(rows[0])
    with open(out / f"{stem}.csv", "w") as f:
        f.write(",".join(keys) + "\n")
        for r in rows:
            f.write(",".join(f"{r[k]:.6g}" if isinstance(r[k], float) else str(r[k]) for k in keys) + "\n")
    machine = f"{platform.processor() or platform.machine()}, torch {torch.__version__}, 1 thread, float64"
    lines = [
        f"Probability-flow likelihood accuracy ({machine}; n = {rows[0]['n']} points per problem, eps = {EPS}).",
        "Errors in nats/dim against a perfect solver; NFE and wall time for the whole batch.",
        "",
        "| problem | SDE | divergence (probes) | steps | rtol=atol | mean abs err | max abs err | bias ± se | NFE "
        "| wall s |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        lines.append(
            f"| {r['problem']} | {r['sde']} | {r['divergence']} ({r['n_probes']}) | "
            f"{'per sample' if r['per_sample'] else 'shared'} | {r['tol']:.0e} | "
            f"{r['err_mean_abs']:.1e} | {r['err_max_abs']:.1e} | {r['bias']:+.1e} ± {r['bias_se']:.1e} | "
            f"{r['nfe']} | {r['wall_s']:.2f} |"
        )
    lines += [
        "",
        "Gap between a perfect solver's answer and the TRUE data log-density (nats/dim, mean over the points;",
        "negative = the ODE model under-rates the data): prior mismatch at T and smoothing from stopping at eps.",
        "",
        "| problem | SDE | true nats/dim | perfect-solver nats/dim | total gap | prior mismatch | eps term |",
        "|---|---|---|---|---|---|---|",
    ]
    seen = set()
    for r in rows:
        if (r["problem"], r["sde"]) in seen:
            continue
        seen.add((r["problem"], r["sde"]))
        lines.append(
            f"| {r['problem']} | {r['sde']} | {r['true_nats_per_dim']:.4f} | "
            f"{r['true_nats_per_dim'] - r['model_gap']:.4f} | {r['model_gap']:+.2e} | {r['prior_gap']:+.2e} | "
            f"{r['eps_gap']:+.2e} |"
        )
    (out / f"{stem}.md").write_text("\n".join(lines) + "\n")
    plot(rows, out / f"{stem}.png")
    print(f"wrote {out / stem}.{{csv,md,png}}")


def plot(rows, path: Path) -> None:
    """Mean |error| against NFE: one line per (SDE, divergence, probes), solid for one probe, dotted for more; shared
    step sizes only (the per-sample rows are in the table)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    problems_ = sorted({r["problem"] for r in rows})
    fig, axes = plt.subplots(1, len(problems_), figsize=(6.5 * len(problems_), 4.8), squeeze=False)
    markers = {"exact": "o", "rademacher": "s", "gaussian": "^"}
    for ax, p in zip(axes[0], problems_, strict=True):
        rows_p = [r for r in rows if r["problem"] == p and not r["per_sample"]]
        keys = sorted({(r["sde"], r["divergence"], r["n_probes"]) for r in rows_p})
        colours = {sde: f"C{i}" for i, sde in enumerate(sorted({key[0] for key in keys}))}
        for sde, div, k in keys:
            sel = [r for r in rows_p if (r["sde"], r["divergence"], r["n_probes"]) == (sde, div, k)]
            sel.sort(key=lambda r: -r["tol"])
            ax.loglog([r["nfe"] for r in sel], [r["err_mean_abs"] for r in sel], marker=markers[div],
                      linestyle="-" if k == 1 else ":", color=colours[sde], label=f"{sde} {div} x{k}")  # fmt: skip
        ax.set(title=f"{p}: error vs NFE over rtol=atol", xlabel="NFE (batch)", ylabel="mean |log p error| (nats/dim)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=5.5, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    t0 = time.perf_counter()
    main()
    print(f"total {time.perf_counter() - t0:.1f}s")
