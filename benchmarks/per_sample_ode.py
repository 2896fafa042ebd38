"""Per-sample adaptive probability-flow ODE: the library's solver against torchdiffeq and torchode.

Issue #9 asks for probability-flow sampling and likelihood with a step size per sample, measured against
torchdiffeq, and names torchode (Lienen & Guennemann 2022), which solves every sample of a batch on its own time
axis. Three Dormand-Prince 5(4) solvers run the same ODE at the same tolerances (rtol = atol = tol):

* ``torchdiffeq``: the batch as one ODE (``per_sample=False``): one step size for the batch. Sampling uses
  torchdiffeq's RMS norm over the whole batch (what ``solver=ode`` does by default); the likelihood the library's
  max-over-samples norm (what ``log_likelihood`` does by default).
* ``scoresde``: :func:`scoresde.solvers.adaptive_ode.dopri5_per_sample` (``per_sample=True``): every sample has
  its own t, h and error; each call evaluates the score only on the samples still running.
* ``torchode``: ``torchode.Dopri5`` + ``IntegralController`` (the same I-controller, safety 0.9, factors 0.2-10,
  Hairer's initial step) with the per-sample norm of the library (RMS over the coordinates; for the likelihood the
  max of that and |delta log p|'s error). torchode evaluates the right-hand side on the WHOLE batch at every call,
  finished samples included (their step is clamped to 0), until the slowest sample ends.

torchode is not a dependency of the package: ``pip install --no-deps torchode torchtyping "typeguard<3"`` (its
own requirements besides torch; sympy is already installed). Without it the torchode rows are skipped.

Costs reported: ``calls`` (batched right-hand-side calls: what sets the wall time on an accelerator), ``rows``
(score rows actually evaluated, summed over calls: the compute, what sets the wall time on a CPU), ``needed``
(evaluations each sample needed while it was running, summed: torchode's 2 + 6 x attempts; equal to ``rows`` for
the library's solver and to calls x batch for torchdiffeq), and the wall time with one thread: with the oracle's
score (cheap: the solvers' own overhead dominates) and, at tol 1e-5, with the cost of a small network added to
every score row (:class:`NetworkStandIn`, a random 4-layer MLP of width 512 whose output is added times 0).

Problems, exact score, float64, batches of mixed difficulty:

* sampling, from x_T ~ p_T (exact) at T = 1 to eps = 1e-3: the 16-D anisotropic Gaussian with an eighth of the
  batch scaled x3 into the tails (exact answer: the closed-form flow map) and the 2-D 8-mode mixture (exact
  answer: torchdiffeq dopri5 at tol 1e-11). Error: RMS over the coordinates of each sample's x(eps).
* likelihood at eps = 1e-5, exact divergence: the 16-D Gaussian with an eighth of the batch scaled x3 (exact
  answer: the oracle's ``ode_log_prob``) and the mixture with an eighth of the batch uniform in [-3, 3]^2 between
  the modes (exact answer: a batch solve at tol 1e-10). Error: |log p - exact| / D (nats/dim).

Both under VP and VE (sigma_max = the largest pairwise distance of the data), tolerances 1e-3 ... 1e-7.

    python benchmarks/per_sample_ode.py [--quick]

Writes benchmarks/results/per_sample_ode.{csv,md,png}. One torch thread, CPU.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import time
from pathlib import Path

import torch

import scoresde
from scoresde.likelihood.divergence import ExactDivergence
from scoresde.likelihood.ode import AugmentedFlow
from scoresde.oracle import anisotropic_gaussian, eight_gaussians

try:
    import torchode
except ImportError:  # optional: the torchode rows are skipped
    torchode = None

RESULTS = Path(__file__).parent / "results"
EPS_SAMPLE, EPS_LIKELIHOOD = 1e-3, 1e-5
SOLVERS = ("torchdiffeq", "scoresde", "torchode")
NET_TOL = 1e-5  # the tolerance at which the wall time is also measured with NetworkStandIn


class RowCounter:
    """A score function that counts its batched calls and the rows it evaluated."""

    def __init__(self, score_fn):
        self.score_fn, self.calls, self.rows = score_fn, 0, 0

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        self.rows += x.shape[0]
        return self.score_fn(x, t)


class NetworkStandIn:
    """The oracle score plus the cost of a network: a random MLP on (x, t), width 512, whose output is added x 0.

    The oracle's score costs little next to a solver's overhead; this gives each score row (and each VJP of the
    exact divergence) the cost of a small network, so the wall time shows what the row counts mean for a model.
    """

    def __init__(self, score_fn, dim: int, width: int = 512):
        torch.manual_seed(0)
        layers = [torch.nn.Linear(dim + 1, width), torch.nn.SiLU(), torch.nn.Linear(width, width), torch.nn.SiLU()]
        self.net = torch.nn.Sequential(*layers, torch.nn.Linear(width, width), torch.nn.SiLU(),
                                       torch.nn.Linear(width, dim)).double()  # fmt: skip
        self.score_fn = score_fn

    def __call__(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        tt = torch.broadcast_to(torch.as_tensor(t, dtype=x.dtype), (x.shape[0],))
        return self.score_fn(x, t) + 0.0 * self.net(torch.cat([x, tt[:, None]], 1))


def ve_sigma_max(data, n: int = 2000) -> float:
    x = data.sample(n, generator=torch.Generator().manual_seed(99)).double().reshape(n, -1)
    return float(torch.cdist(x, x).max())


def sdes(data):
    yield "vp", scoresde.VPSDE()
    yield "ve", scoresde.VESDE(0.01, ve_sigma_max(data))


# --------------------------------------------------------------------------------------------- torchode
def _rms(y: torch.Tensor) -> torch.Tensor:
    return y.pow(2).mean(1).sqrt()


def _augmented_norm(y: torch.Tensor) -> torch.Tensor:
    """The library's likelihood norm on torchode's flat (B, D + 1) state: max(RMS of x's part, |delta's|)."""
    return torch.maximum(_rms(y[:, :-1]), y[:, -1].abs())


def torchode_solve(f, y0: torch.Tensor, t0: float, t1: float, tol: float, norm) -> tuple[torch.Tensor, dict]:
    """Dormand-Prince with a per-sample step size (torchode); y0 of shape (B, F)."""
    term = torchode.ODETerm(f)
    controller = torchode.IntegralController(atol=tol, rtol=tol, term=term, norm=norm)
    solver = torchode.AutoDiffAdjoint(torchode.Dopri5(term=term), controller, max_steps=100_000)
    batch = y0.shape[0]
    problem = torchode.InitialValueProblem(
        y0=y0, t_start=torch.full((batch,), t0, dtype=y0.dtype), t_end=torch.full((batch,), t1, dtype=y0.dtype)
    )
    sol = solver.solve(problem)
    if not bool((sol.status == 0).all()):
        raise RuntimeError(f"torchode stopped with status {sol.status.unique().tolist()}")
    return sol.ys[:, -1], {k: v for k, v in sol.stats.items() if isinstance(v, torch.Tensor)}


# --------------------------------------------------------------------------------------------- sampling
def sampling_problems(quick: bool):
    gen = torch.Generator().manual_seed(0)
    gauss, mix = anisotropic_gaussian(16), eight_gaussians()
    for pname, data, n in (("gaussian16", gauss, 32 if quick else 64), ("mixture8", mix, 64 if quick else 128)):
        for sname, sde in sdes(data):
            if pname == "gaussian16":
                x_T = data.marginal(sde, sde.T).sample(n, generator=gen, dtype=torch.float64)
                mu = data.mean * sde.mean_scale(sde.T)
                x_T[: n // 8] = mu + 3 * (x_T[: n // 8] - mu)  # an eighth of the batch far in the tails
                exact = data.flow(sde, x_T, sde.T, EPS_SAMPLE)
            else:
                x_T = scoresde.oracle.GaussianMixture(
                    [c.marginal(sde, sde.T) for c in data.components], data.weights
                ).sample(n, generator=gen, dtype=torch.float64)
                exact, _ = scoresde.sample(sde, data.score_fn(sde), None, start=x_T, solver="ode", rtol=1e-11,
                                           atol=1e-11, eps=EPS_SAMPLE, denoise=False)  # fmt: skip
            yield pname, sname, sde, data, x_T, exact


def run_sampling(solver: str, sde, data, x_T: torch.Tensor, tol: float, net: bool = False) -> tuple[torch.Tensor, dict]:
    score_fn = data.score_fn(sde)
    score = RowCounter(NetworkStandIn(score_fn, data.dim) if net else score_fn)
    start = time.perf_counter()
    if solver == "torchode":
        flow = sde.reverse(score, probability_flow=True)
        x, stats = torchode_solve(lambda t, y: flow.sde(y, t).drift, x_T, sde.T, EPS_SAMPLE, tol, _rms)
        needed = int((2 + 6 * stats["n_steps"]).sum())
    else:
        x, info = scoresde.sample(sde, score, None, start=x_T, solver="ode", rtol=tol, atol=tol, eps=EPS_SAMPLE,
                                  denoise=False, per_sample=solver == "scoresde")  # fmt: skip
        needed = info.extras.get("sample_evaluations", score.rows)
    wall = time.perf_counter() - start
    return x, dict(calls=score.calls, rows=score.rows, needed=needed, wall_time=wall)


# --------------------------------------------------------------------------------------------- likelihood
def mixed_difficulty_batches(quick: bool):
    """(name, data, x): a 16-D Gaussian batch with an eighth far in the tails, a mixture batch with an eighth between
    the modes (also used by benchmarks/stochastic_solvers.py --section likelihood)."""
    gen = torch.Generator().manual_seed(0)
    gauss, mix = anisotropic_gaussian(16), eight_gaussians()
    xg = gauss.sample(32 if quick else 64, generator=gen, dtype=torch.float64)
    xg[: len(xg) // 8] *= 3.0  # an eighth of the batch far in the tails
    xm = mix.sample(64 if quick else 128, generator=gen, dtype=torch.float64)
    xm[: len(xm) // 8] = 6 * torch.rand(len(xm) // 8, 2, generator=gen, dtype=torch.float64) - 3  # between modes
    return (("gaussian16", gauss, xg), ("mixture8", mix, xm))


def likelihood_problems(quick: bool):
    for pname, data, x in mixed_difficulty_batches(quick):
        for sname, sde in sdes(data):
            if pname == "gaussian16":
                exact = data.ode_log_prob(sde, x, eps=EPS_LIKELIHOOD)
            else:
                exact = scoresde.log_likelihood(sde, data.score_fn(sde), x, rtol=1e-10, atol=1e-10,
                                                eps=EPS_LIKELIHOOD).logp  # fmt: skip
            yield pname, sname, sde, data, x, exact


def run_likelihood(solver: str, sde, data, x: torch.Tensor, tol: float, net: bool = False) -> tuple[torch.Tensor, dict]:
    score_fn = data.score_fn(sde)
    score = RowCounter(NetworkStandIn(score_fn, data.dim) if net else score_fn)
    start = time.perf_counter()
    if solver == "torchode":
        rhs = AugmentedFlow(sde, score, ExactDivergence(), eps=EPS_LIKELIHOOD)

        def f(t: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
            drift, div = rhs(t.clamp(max=sde.T), (y[:, :-1], y[:, -1]))  # the first step-size probe may pass T
            return torch.cat([drift, div[:, None]], 1)

        y0 = torch.cat([x, torch.zeros(len(x), 1, dtype=x.dtype)], 1)
        y, stats = torchode_solve(f, y0, EPS_LIKELIHOOD, sde.T, tol, _augmented_norm)
        logp = sde.prior_logp(y[:, :-1]) + y[:, -1]
        needed = int((2 + 6 * stats["n_steps"]).sum())
    else:
        res = scoresde.log_likelihood(sde, score, x, rtol=tol, atol=tol, eps=EPS_LIKELIHOOD,
                                      per_sample=solver == "scoresde")  # fmt: skip
        logp = res.logp
        needed = int(res.nfe_per_sample.sum()) if res.nfe_per_sample is not None else score.rows
    wall = time.perf_counter() - start
    return logp, dict(calls=score.calls, rows=score.rows, needed=needed, wall_time=wall)


# --------------------------------------------------------------------------------------------- driver
def run(quick: bool) -> list[dict]:
    tols = (1e-4, 1e-5, 1e-6) if quick else (1e-3, 1e-4, 1e-5, 1e-6, 1e-7)
    solvers = [s for s in SOLVERS if s != "torchode" or torchode is not None]
    rows = []
    for task, problems in (("sampling", sampling_problems), ("likelihood", likelihood_problems)):
        for pname, sname, sde, data, x, exact in problems(quick):
            for tol in tols:
                for solver in solvers:
                    runner = run_sampling if task == "sampling" else run_likelihood
                    out, cost = runner(solver, sde, data, x, tol)
                    if task == "sampling":
                        err = (out - exact).pow(2).mean(1).sqrt()
                    else:
                        err = (out - exact).abs() / data.dim
                    # the same solve with a network's cost per score row, at one tolerance
                    wall_net = runner(solver, sde, data, x, tol, net=True)[1]["wall_time"] if tol == NET_TOL else None
                    rows.append(dict(task=task, problem=pname, sde=sname, batch=len(x), tol=tol, solver=solver,
                                     **cost, wall_time_net=wall_net, max_err=float(err.max()),
                                     mean_err=float(err.mean())))  # fmt: skip
                    print(rows[-1], flush=True)
    return rows


def markdown(rows: list[dict], header: list[str]) -> str:
    lines = header + [
        "Units: sampling error = RMS over coordinates of x(eps) - exact; likelihood error = |log p - exact| / D "
        "(nats/dim). calls = batched score calls; rows = score rows evaluated (the compute); needed = evaluations "
        "each sample needed while running, summed; wall = seconds, one thread.",
        "",
        "| task | problem | sde | tol | solver | calls | rows | needed | max err | mean err | wall (s) | MLP (s) |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        net = "-" if r["wall_time_net"] is None else f"{r['wall_time_net']:.2f}"
        lines.append(
            f"| {r['task']} | {r['problem']} | {r['sde']} | {r['tol']:g} | {r['solver']} | {r['calls']} | {r['rows']} "
            f"| {r['needed']} | {r['max_err']:.2e} | {r['mean_err']:.2e} | {r['wall_time']:.2f} | {net} |"
        )
    lines += ["", "Summed over every problem and tolerance (rows ratio: torchdiffeq or torchode over scoresde):", ""]
    lines += ["| task | solver | calls | rows | wall (s) | rows / scoresde rows | wall with the MLP at tol "
              f"{NET_TOL:g} (s) |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for task in ("sampling", "likelihood"):
        base = sum(r["rows"] for r in rows if r["task"] == task and r["solver"] == "scoresde")
        for solver in SOLVERS:
            sel = [r for r in rows if r["task"] == task and r["solver"] == solver]
            if sel:
                tot = {k: sum(r[k] for r in sel) for k in ("calls", "rows", "wall_time")}
                net = sum(r["wall_time_net"] for r in sel if r["wall_time_net"] is not None)
                lines.append(f"| {task} | {solver} | {tot['calls']} | {tot['rows']} | {tot['wall_time']:.1f} | "
                             f"{tot['rows'] / base:.2f} | {net:.1f} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = list(dict.fromkeys((r["task"], r["problem"], r["sde"]) for r in rows))
    fig, axes = plt.subplots(2, (len(panels) + 1) // 2, figsize=(4.2 * ((len(panels) + 1) // 2), 7.5), squeeze=False)
    styles = {"torchdiffeq": ("tab:blue", "s"), "scoresde": ("tab:red", "o"), "torchode": ("tab:green", "^")}
    for ax, (task, problem, sde) in zip(axes.flat, panels, strict=False):
        for solver, (color, marker) in styles.items():
            sel = [r for r in rows if (r["task"], r["problem"], r["sde"], r["solver"]) == (task, problem, sde, solver)]
            if sel:
                ax.loglog([r["rows"] for r in sel], [r["max_err"] for r in sel], color=color, marker=marker,
                          label=f"{solver} (rows)")  # fmt: skip
                if solver == "torchode":
                    ax.loglog([r["needed"] for r in sel], [r["max_err"] for r in sel], color=color, marker=marker,
                              ls=":", mfc="none", label="torchode (needed)")  # fmt: skip
        ax.set(title=f"{task}: {problem} {sde}", xlabel="score rows evaluated (summed NFE)", ylabel="max error")
    axes.flat[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small batches, three tolerances (smoke run)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"
    version = getattr(torchode, "__version__", "not installed")
    header = [f"Machine: {machine}, torch.set_num_threads(1), torchode {version}; load average "
              f"{os.getloadavg()[0]:.1f} at the start.", ""]  # fmt: skip
    start = time.perf_counter()
    rows = run(args.quick)
    stem = "per_sample_ode" + ("_quick" if args.quick else "")
    with (args.out / f"{stem}.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    (args.out / f"{stem}.md").write_text(markdown(rows, header) + f"\nTotal: {time.perf_counter() - start:.0f} s.\n")
    plot(rows, args.out / f"{stem}.png")


if __name__ == "__main__":
    main()
