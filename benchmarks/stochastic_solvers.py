"""Stochastic and adaptive samplers against the analytic oracle, side by side with k-diffusion.

Every sampler runs with the EXACT score, in float64, from the same exact x_T ~ p_T, from T = 1 down to eps = 1e-3
with no final denoising step, on the 64-D anisotropic Gaussian and the 2-D 8-mode mixture (scoresde.oracle) under
VP, sub-VP and VE (sigma_max = the largest pairwise distance of the data). Errors:

* FD/floor: the Frechet distance between the sample moments and the exact moments of p_eps, divided by the mean
  Frechet distance of as many exact samples (1 = as good as exact samples);
* on the mixture, the total-variation distance of the 8 mode weights and the fraction of samples off every mode
  (farther than 4 standard deviations of p_eps's components from every mode centre; exact samples: 0.03%).

Sections (``--section``):

* ``reference``: the paper's samplers at the paper's settings against the reference implementation's figures
  (PC with the Langevin corrector, snr 0.16, at N = 1000 on VE, per-sample vs batch SNR rule; ancestral sampling
  with DDPM's variances and reverse diffusion at N = 100 and 20).
* ``fast``: the stochastic samplers at 10, 20, 50 NFE on the uniform, log-SNR, Karras and logistic grids, and
  k-diffusion's DPM-Solver++(2M) SDE, DPM-Solver++ SDE, DPM-Solver++(3M) SDE and Euler ancestral on the log-SNR
  and Karras grids. k-diffusion is not a dependency: its sampling.py is read from a ``fetch``-ed mirror
  (``--k-diffusion``, a git directory) into a temporary directory at run time; the oracle is wrapped as a
  denoiser D(x, sigma) of the x/m-scaled VE view.
* ``churn``: EDM's stochastic sampler (``edm_sde``) over S_churn x S_noise on the Karras and logistic grids at 10,
  20, 50 NFE.
* ``subvp``: why DPM-Solver++(2M) SDE leaves many samples of the sub-VP mixture off every mode at 10 NFE: the
  sigma levels of each grid, and the sampler on the log-SNR grid clipped at sigma = 0.0105 (VP's sigma(eps)) with
  one last step to eps (under VP that clip is sigma(eps): its last step has zero length), beside the plain log-SNR
  and logistic grids, at 10, 15, 20 NFE.
* ``adaptive``: the per-sample adaptive reverse-SDE solver (Jolicoeur-Martineau et al. 2021) against 1000-step
  Euler-Maruyama.
* ``likelihood``: total score evaluations of the per-sample adaptive likelihood against torchdiffeq's batch-shared
  dopri5 at the same accuracy, on a batch of mixed difficulty.

    python benchmarks/stochastic_solvers.py [--section fast] [--quick]

Writes benchmarks/results/stochastic_solvers_<section>.csv and .md, and stochastic_solvers_fast.png.
Everything runs with torch.set_num_threads(1) on the CPU.
"""

from __future__ import annotations

import argparse
import csv
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

import scoresde
from scoresde.oracle import GaussianMixture, anisotropic_gaussian, eight_gaussians, gaussian_mean_cov

RESULTS = Path(__file__).parent / "results"
EPS = 1e-3
# a snapshot of k-diffusion under SCORESDE_REFERENCE_ROOT (see benchmarks/provenance.py); --k-diffusion overrides
K_DIFFUSION = Path(os.environ.get("SCORESDE_REFERENCE_ROOT", "references")) / "crowsonkb+k-diffusion" / "repo"


# --------------------------------------------------------------------------------------------- problems
def _sqrtm(a: torch.Tensor) -> torch.Tensor:
    w, v = torch.linalg.eigh(0.5 * (a + a.T))
    return (v * w.clamp_min(0).sqrt()) @ v.T


def frechet(mu1, cov1, mu2, cov2) -> float:
    r1 = _sqrtm(cov1)
    return float((mu1 - mu2).pow(2).sum() + torch.trace(cov1 + cov2 - 2 * _sqrtm(r1 @ cov2 @ r1)))


def moments(x: torch.Tensor):
    x = x.reshape(x.shape[0], -1).double()
    return x.mean(0), torch.atleast_2d(torch.cov(x.T))


def ve_sigma_max(data, n: int = 2000) -> float:
    x = data.sample(n, generator=torch.Generator().manual_seed(99)).double().reshape(n, -1)
    return float(torch.cdist(x, x).max())


class Problem:
    """An oracle distribution under one SDE: exact x_T, exact p_eps moments, noise floor, mixture statistics."""

    def __init__(self, name: str, data, sde: scoresde.SDE, n: int, seed: int = 0):
        self.name, self.data, self.sde, self.n = name, data, sde, n
        self.mixture = isinstance(data, GaussianMixture)
        gen = torch.Generator().manual_seed(seed)
        self.x_T = self.marginal(sde.T).sample(n, generator=gen, dtype=torch.float64)
        self.target = self.marginal(EPS)
        self.mean, self.cov = self.target.mean_cov() if self.mixture else gaussian_mean_cov(self.target)
        exact = [self.target.sample(n, generator=gen, dtype=torch.float64) for _ in range(8)]
        self.floor = sum(frechet(*moments(x), self.mean, self.cov) for x in exact) / len(exact)

    def marginal(self, t: float):
        if self.mixture:
            return GaussianMixture([c.marginal(self.sde, t) for c in self.data.components], self.data.weights)
        return self.data.marginal(self.sde, t)

    def error(self, x: torch.Tensor) -> dict:
        """FD/floor, trace variance ratio, and for the mixture mode-weight TV and off-mode fraction."""
        mu, cov = moments(x)
        out = {"fd_floor": frechet(mu, cov, self.mean, self.cov) / self.floor,
               "var_ratio": float(cov.trace() / self.cov.trace())}  # fmt: skip
        if self.mixture:
            means = torch.stack([c.mean for c in self.target.components])
            std = float(self.target.components[0].eigvals.max().sqrt())
            dist = torch.cdist(x.double(), means)
            counts = torch.bincount(dist.argmin(1), minlength=len(means)).double()
            out["mode_tv"] = 0.5 * float((counts / len(x) - self.data.weights).abs().sum())
            out["off_mode"] = float((dist.min(1).values > 4 * std).double().mean())
        return out


def problems(n: int, which: tuple[str, ...] = ("gaussian64", "mixture8"), sdes=("vp", "subvp", "ve")):
    for pname in which:
        data = anisotropic_gaussian(64) if pname == "gaussian64" else eight_gaussians()
        for sname in sdes:
            sde = {"vp": scoresde.VPSDE, "subvp": scoresde.SubVPSDE}.get(sname)
            sde = sde() if sde is not None else scoresde.VESDE(0.01, ve_sigma_max(data))
            yield sname, Problem(pname, data, sde, n)


def run_library(prob: Problem, seed: int = 1, **options) -> tuple[dict, int]:
    gen = torch.Generator().manual_seed(seed)
    x, info = scoresde.sample(prob.sde, prob.data.score_fn(prob.sde), None, start=prob.x_T, generator=gen,
                              denoise=False, **options)  # fmt: skip
    return prob.error(x), info


# --------------------------------------------------------------------------------------------- k-diffusion
def load_k_diffusion(repo: Path, tmp: Path):
    """k-diffusion's sampling.py, read from its git mirror into ``tmp`` (with a one-function stand-in for utils)."""
    src = subprocess.run(["git", "-C", str(repo), "show", "HEAD:k_diffusion/sampling.py"], capture_output=True,
                         text=True, check=True).stdout  # fmt: skip
    pkg = tmp / "k_diffusion"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "sampling.py").write_text(src)
    (pkg / "utils.py").write_text("def append_dims(x, n):\n    return x.reshape(*x.shape, *([1] * (n - x.ndim)))\n")
    sys.path.insert(0, str(tmp))
    import k_diffusion.sampling as sampling

    return sampling


class OracleDenoiser:
    """The exact score as k-diffusion's denoiser D(x_tilde, sigma) = x_tilde + sigma^2 m(t) s(m x_tilde, t)."""

    def __init__(self, prob: Problem):
        self.prob, self.calls = prob, 0

    def __call__(self, x: torch.Tensor, sigma: torch.Tensor) -> torch.Tensor:
        self.calls += 1
        sde = self.prob.sde
        t = sde.t_from_sigma(sigma.double()).clamp(0.0, sde.T)
        m = sde.mean_scale(t).to(x)
        score = self.prob.data.score(sde, m[:, None] * x, t.to(x))
        return x + (sigma.to(x) ** 2 * m)[:, None] * score


def run_k_diffusion(sampling, prob: Problem, name: str, times: torch.Tensor, seed: int = 1) -> tuple[dict, int]:
    sde = prob.sde
    sigmas = (sde.std(times) / sde.mean_scale(times)).double()
    model = OracleDenoiser(prob)
    torch.manual_seed(seed)
    x = getattr(sampling, name)(model, prob.x_T / float(sde.mean_scale(sde.T)), sigmas, disable=True)
    return prob.error(x * float(sde.mean_scale(EPS))), model.calls


# --------------------------------------------------------------------------------------------- sections
def reference(quick: bool) -> list[dict]:
    """The paper's samplers at the paper's settings (see the module docstring)."""
    rows, n = [], 500 if quick else 2000
    configs = [("pc_langevin_sample", 1000, {"solver": "pc", "snr_rule": "sample"}, ("ve",)),
               ("pc_langevin_batch", 1000, {"solver": "pc", "snr_rule": "batch"}, ("ve",))]  # fmt: skip
    for steps in (100, 20):
        for variance in ("beta_tilde", "beta", "analytic"):
            configs.append((f"ancestral_{variance}", steps, {"solver": "ancestral", "variance": variance}, None))
        configs.append(("reverse_diffusion", steps, {"solver": "reverse_diffusion"}, None))
    for sname, prob in problems(n):
        for name, steps, options, only in configs:
            if only is not None and sname not in only or (quick and steps == 1000):
                continue
            err, info = run_library(prob, steps=steps, **options)
            rows.append(dict(problem=prob.name, sde=sname, sampler=name, steps=steps, nfe=info.nfe, **err))
            print(rows[-1], flush=True)
    return rows


LIBRARY = {
    "euler_maruyama": {"solver": "euler_maruyama"},
    "reverse_diffusion": {"solver": "reverse_diffusion"},
    "ancestral": {"solver": "ancestral", "variance": "beta_tilde"},
    "ancestral_analytic": {"solver": "ancestral", "variance": "analytic"},
    "pc_langevin": {"solver": "pc", "predictor": "reverse_diffusion", "corrector": "langevin"},
    "dpmpp_2m_sde": {"solver": "dpmpp_2m_sde"},
    "dpmpp_2m_sde_eta0.5": {"solver": "dpmpp_2m_sde", "eta": 0.5},
    "edm_sde": {"solver": "edm_sde"},
}
K_SAMPLERS = {  # name -> (function in k_diffusion.sampling, NFE per step, keyword arguments)
    "k_dpmpp_2m_sde": ("sample_dpmpp_2m_sde", 1, {}),
    "k_dpmpp_3m_sde": ("sample_dpmpp_3m_sde", 1, {}),
    "k_dpmpp_sde": ("sample_dpmpp_sde", 2, {}),
    "k_euler_ancestral": ("sample_euler_ancestral", 1, {}),
}
GRIDS = ("uniform", "log_snr", "karras", "logistic")


def fast(quick: bool, k_repo: Path) -> list[dict]:
    """Every stochastic sampler on every grid at a ladder of budgets, and k-diffusion's on the Karras grid."""
    import functools

    rows, n = [], 500 if quick else 1000
    budgets = (10, 20) if quick else (10, 20, 50)
    with tempfile.TemporaryDirectory() as tmp:
        sampling = load_k_diffusion(k_repo, Path(tmp)) if k_repo.exists() else None
        for sname, prob in problems(n):
            for nfe in budgets:
                for name, options in LIBRARY.items():
                    for grid in GRIDS:
                        err, info = run_library(prob, nfe=nfe, grid=grid, **options)
                        rows.append(dict(problem=prob.name, sde=sname, sampler=name, grid=grid, nfe_budget=nfe,
                                         nfe=info.nfe, **err))  # fmt: skip
                if sampling is None:
                    continue
                for name, (fn, per_step, kwargs) in K_SAMPLERS.items():
                    for grid in ("log_snr", "karras"):
                        times = scoresde.solvers.grids.make(grid, prob.sde, nfe // per_step, EPS)
                        setattr(sampling, name, functools.partial(getattr(sampling, fn), **kwargs))
                        err, calls = run_k_diffusion(sampling, prob, name, times)
                        rows.append(dict(problem=prob.name, sde=sname, sampler=name, grid=grid, nfe_budget=nfe,
                                         nfe=calls, **err))  # fmt: skip
                print(f"{prob.name} {sname} nfe={nfe}: " + ", ".join(
                    f"{r['sampler']}@{r['grid']}={r['fd_floor']:.2f}" for r in rows
                    if r["problem"] == prob.name and r["sde"] == sname and r["nfe_budget"] == nfe
                    and r["grid"] in ("karras", "log_snr")), flush=True)  # fmt: skip
    return rows


CHURNS = (0.0, 1.0, 2.0, 5.0, 10.0, 40.0)  # gamma_i = min(S_churn / N, sqrt(2) - 1): 40 is EDM's ImageNet value
S_NOISES = (1.0, 1.003, 1.007)


def churn(quick: bool) -> tuple[list[dict], list[str]]:
    """EDM's Algorithm 2 over S_churn x S_noise (S_min = 0.05, S_max = 50) on the Karras and logistic grids."""
    rows, n = [], 500 if quick else 1000
    budgets = (10, 20) if quick else (10, 20, 50)
    for sname, prob in problems(n):
        for nfe in budgets:
            for grid in ("karras", "logistic"):
                for s_churn in CHURNS:
                    for s_noise in S_NOISES if s_churn > 0 else (1.0,):
                        err, info = run_library(prob, solver="edm_sde", nfe=nfe, grid=grid, S_churn=s_churn,
                                                S_noise=s_noise)  # fmt: skip
                        rows.append(dict(problem=prob.name, sde=sname, grid=grid, S_churn=s_churn, S_noise=s_noise,
                                         nfe_budget=nfe, nfe=info.nfe, **err))  # fmt: skip
            print(f"{prob.name} {sname} nfe={nfe}: " + ", ".join(
                f"{r['grid']} {r['S_churn']:g}/{r['S_noise']:g}={r['fd_floor']:.2f}" for r in rows
                if r["problem"] == prob.name and r["sde"] == sname and r["nfe_budget"] == nfe), flush=True)  # fmt: skip
    body = ["EDM's stochastic sampler (edm_sde, S_min 0.05, S_max 50) by grid, S_churn / S_noise.", ""]
    for problem, metrics in (("gaussian64", ("fd_floor",)), ("mixture8", ("fd_floor", "off_mode"))):
        sel = [r for r in rows if r["problem"] == problem]
        for metric in metrics:
            body += [f"**{problem}: {metric}** (columns: SDE / NFE budget; rows: grid S_churn / S_noise)", ""]
            fmt = "{:.3f}" if metric == "off_mode" else "{:.2f}"
            body += table(sel, lambda r: f"{r['grid']} {r['S_churn']:g} / {r['S_noise']:g}",
                          lambda r: f"{r['sde']} {r['nfe_budget']}", lambda r, m=metric: r[m], fmt=fmt)  # fmt: skip
            body.append("")
    return rows, body


class ClippedLogSNR(scoresde.solvers.DPMSolverPP2MSDE):
    """DPM-Solver++(2M) SDE on a grid uniform in lambda from sigma(T) down to ``sigma_lo``, then one step to eps."""

    def __init__(self, sigma_lo: float, **options):
        super().__init__(**options)
        self.sigma_lo = sigma_lo

    def grid(self, sde, steps, eps):
        sigmas = torch.logspace(math.log10(float(sde.sigma(sde.T))), math.log10(self.sigma_lo), steps,
                                dtype=torch.float64)  # fmt: skip
        t = sde.t_from_sigma(sigmas)
        t[0] = sde.T
        return torch.cat([t, torch.tensor([eps], dtype=torch.float64)])


def subvp(quick: bool) -> tuple[list[dict], list[str]]:
    """dpmpp_2m_sde on the mixture under VP and sub-VP: log-SNR, clipped log-SNR and logistic grids (docstring)."""
    rows, n = [], 500 if quick else 1000
    for sname, prob in problems(n, which=("mixture8",), sdes=("vp", "subvp")):
        for nfe in (10, 15, 20):
            for name, solver in (("log_snr", "dpmpp_2m_sde"), ("log_snr clipped at 0.0105", ClippedLogSNR(0.0105)),
                                 ("logistic", "dpmpp_2m_sde")):  # fmt: skip
                grid = {"grid": name} if name in GRIDS else {}
                err, info = run_library(prob, solver=solver, nfe=nfe, **grid)
                sig = prob.sde.sigma(info.times.double())
                rows.append(dict(problem=prob.name, sde=sname, grid=name, nfe_budget=nfe, nfe=info.nfe,
                                 sigma_eps=float(sig[-1]), steps_below_0_03=int((sig[1:] < 0.03).sum()),
                                 sigmas=" ".join(f"{v:.3g}" for v in sig.tolist()), **err))  # fmt: skip
                print(rows[-1], flush=True)
    body = ["DPM-Solver++(2M) SDE (default options) on the 2-D mixture; steps_below_0_03: grid intervals ending below "
            "sigma = 0.03 (the modes' std is 0.15).", "",
            "| sde | grid | NFE | sigma(eps) | steps below 0.03 | off mode | mode TV | FD/floor | sigma levels |",
            "|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        body.append(f"| {r['sde']} | {r['grid']} | {r['nfe']} | {r['sigma_eps']:.3g} | {r['steps_below_0_03']} | "
                    f"{r['off_mode']:.3f} | {r['mode_tv']:.3f} | {r['fd_floor']:.2f} | "
                    f"{r['sigmas'] if r['nfe'] == 10 else ''} |")  # fmt: skip
    return rows, body


def adaptive(quick: bool) -> tuple[list[dict], list[str]]:
    """The per-sample adaptive reverse-SDE solver against 1000-step Euler-Maruyama (module docstring)."""
    rows = []
    configs = {"euler_maruyama_1000": {"solver": "euler_maruyama", "steps": 1000},
               "adaptive_sde": {"solver": "adaptive_sde"},
               "adaptive_sde_rel0.1": {"solver": "adaptive_sde", "eps_rel": 0.1},
               "adaptive_sde_redraw": {"solver": "adaptive_sde", "retry": "redraw"}}  # fmt: skip
    for pname, n in (("gaussian64", 300 if quick else 1000), ("mixture8", 500 if quick else 2000)):
        for sname, prob in problems(n, which=(pname,)):
            for name, options in configs.items():
                start = time.perf_counter()
                err, info = run_library(prob, **options)
                extras = info.extras
                nfe_mean = extras.get("nfe_mean", info.nfe)
                rows.append(dict(problem=pname, sde=sname, sampler=name, n=n, nfe_mean=nfe_mean,
                                 nfe_max=extras.get("nfe_max", info.nfe), score_calls=info.nfe,
                                 rejected=extras.get("rejected_attempts", 0), wall_time=time.perf_counter() - start,
                                 **err))  # fmt: skip
                print(rows[-1], flush=True)
    body = ["Per-sample adaptive SDE solver (Jolicoeur-Martineau et al. 2021) vs 1000-step Euler-Maruyama; nfe_mean "
            "and nfe_max are score evaluations per sample, score_calls the batched calls.", ""]  # fmt: skip
    keys = ("fd_floor", "mode_tv", "off_mode", "nfe_mean", "nfe_max", "score_calls", "rejected")
    body += ["| problem | sde | sampler | " + " | ".join(keys) + " |", "|---" * (3 + len(keys)) + "|"]
    for r in rows:
        cells = [f"{r[k]:.3f}" if isinstance(r.get(k), float) else str(r.get(k, "-")) for k in keys]
        body.append(f"| {r['problem']} | {r['sde']} | {r['sampler']} | " + " | ".join(cells) + " |")
    return rows, body


def likelihood(quick: bool) -> tuple[list[dict], list[str]]:
    """Per-sample adaptive likelihood vs torchdiffeq's batch-shared dopri5 on batches of mixed difficulty."""
    from per_sample_ode import mixed_difficulty_batches

    rows = []
    for pname, data, x in mixed_difficulty_batches(quick):
        for sname, sde in (("vp", scoresde.VPSDE()), ("ve", scoresde.VESDE(0.01, ve_sigma_max(data)))):
            if pname == "gaussian16":
                exact = data.ode_log_prob(sde, x, eps=1e-5)
            else:  # no closed form: a tight batch solve
                exact = scoresde.log_likelihood(sde, data.score_fn(sde), x, rtol=1e-10, atol=1e-10).logp
            for tol in (1e-5, 1e-6):
                for per_sample in (False, True):
                    start = time.perf_counter()
                    res = scoresde.log_likelihood(sde, data.score_fn(sde), x, rtol=tol, atol=tol, per_sample=per_sample)
                    evals = int(res.nfe_per_sample.sum()) if per_sample else res.nfe * len(x)
                    err = (res.logp - exact).abs() / data.dim
                    rows.append(dict(problem=pname, sde=sname, tol=tol, solver="per_sample" if per_sample else "batch",
                                     batch=len(x), calls=res.nfe, sample_evaluations=evals,
                                     max_err_nats_per_dim=float(err.max()), median_err_nats_per_dim=float(err.median()),
                                     wall_time=time.perf_counter() - start))  # fmt: skip
                    print(rows[-1], flush=True)
    body = ["Likelihood (exact divergence, dopri5) on batches of mixed difficulty: 16-D Gaussian with an eighth of the "
            "batch scaled x3 into the tails (error against the oracle's ode_log_prob), 2-D mixture with an eighth of "
            "the batch uniform in [-3, 3]^2 (error against a batch solve at tol 1e-10). sample_evaluations: score "
            "evaluations summed over samples (batch solver: calls x batch).", "",
            "| problem | sde | tol | solver | calls | sample evaluations | max err (nats/dim) | median err |",
            "|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        body.append(
            f"| {r['problem']} | {r['sde']} | {r['tol']:g} | {r['solver']} | {r['calls']} | "
            f"{r['sample_evaluations']} | {r['max_err_nats_per_dim']:.2e} | {r['median_err_nats_per_dim']:.2e} |"
        )
    return rows, body


# --------------------------------------------------------------------------------------------- output
def write_csv(path: Path, rows: list[dict]) -> None:
    fields = list(dict.fromkeys(k for row in rows for k in row))
    with path.open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)


def table(rows: list[dict], row_key, col_key, value, fmt="{:.2f}") -> list[str]:
    """A markdown table: one row per row_key(row), one column per col_key(row), cells value(row)."""
    rkeys = list(dict.fromkeys(row_key(r) for r in rows))
    ckeys = list(dict.fromkeys(col_key(r) for r in rows))
    cells = {(row_key(r), col_key(r)): value(r) for r in rows}
    lines = ["| | " + " | ".join(map(str, ckeys)) + " |", "|---" * (len(ckeys) + 1) + "|"]
    for rk in rkeys:
        vals = [cells.get((rk, ck)) for ck in ckeys]
        lines.append(f"| {rk} | " + " | ".join("-" if v is None else fmt.format(v) for v in vals) + " |")
    return lines


def fast_markdown(rows: list[dict]) -> list[str]:
    lines = []
    for problem, metrics in (("gaussian64", ("fd_floor",)), ("mixture8", ("fd_floor", "off_mode", "mode_tv"))):
        sel = [r for r in rows if r["problem"] == problem]
        for metric in metrics:
            lines += [f"**{problem}: {metric}** (columns: SDE / NFE budget; rows: sampler @ grid)", ""]
            fmt = "{:.3f}" if metric != "fd_floor" else "{:.2f}"
            lines += table(sel, lambda r: f"{r['sampler']} @ {r['grid']}", lambda r: f"{r['sde']} {r['nfe_budget']}",
                           lambda r, metric=metric: r[metric], fmt=fmt)  # fmt: skip
            lines.append("")
    return lines


def plot_fast(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(2, 3, figsize=(15, 8.5), sharex=True)
    samplers = list(dict.fromkeys(r["sampler"] for r in rows))
    for r_i, problem in enumerate(("gaussian64", "mixture8")):
        for c_i, sde in enumerate(("vp", "subvp", "ve")):
            ax = axes[r_i, c_i]
            ax.set_prop_cycle(color=plt.cm.tab20.colors[: len(samplers)])
            sel = [r for r in rows if r["problem"] == problem and r["sde"] == sde]
            for name in samplers:
                best = {}
                for r in sel:
                    if r["sampler"] == name:
                        best[r["nfe_budget"]] = min(best.get(r["nfe_budget"], math.inf), r["fd_floor"])
                if best:
                    ax.loglog(*zip(*sorted(best.items()), strict=True), marker="o", ms=3, label=name,
                              ls="--" if name.startswith("k_") else "-")  # fmt: skip
            ax.axhline(1.0, color="k", lw=1)
            ax.set_title(f"{problem}, {sde} (best grid per sampler)")
            ax.set_xlabel("NFE")
            ax.set_ylabel("FD / noise floor")
    axes[0, 0].legend(fontsize=7, ncol=2)
    fig.tight_layout()
    fig.savefig(path, dpi=100)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sections = ("reference", "fast", "churn", "subvp", "adaptive", "likelihood", "all")
    parser.add_argument("--section", choices=sections, default="all")
    parser.add_argument("--quick", action="store_true", help="500 samples and short ladders (smoke run)")
    parser.add_argument("--k-diffusion", type=Path, default=K_DIFFUSION, help="git directory of k-diffusion")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    torch.set_num_threads(1)
    args.out.mkdir(parents=True, exist_ok=True)
    machine = f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, torch {torch.__version__}"
    header = [f"Machine: {machine}, torch.set_num_threads(1); load average {os.getloadavg()[0]:.1f} at the start.", ""]
    every = ("reference", "fast", "churn", "subvp", "adaptive", "likelihood")
    sections = every if args.section == "all" else (args.section,)
    for section in sections:
        start = time.perf_counter()
        suffix = section + ("_quick" if args.quick else "")
        if section == "reference":
            rows = reference(args.quick)
            body = table(rows, lambda r: f"{r['sampler']} N={r['steps']}", lambda r: f"{r['problem']} {r['sde']}",
                         lambda r: r["var_ratio"], fmt="{:.3f}")  # fmt: skip
            body = ["Trace of the sample covariance / trace of the exact one:", ""] + body + ["", "FD / floor:", ""]
            body += table(rows, lambda r: f"{r['sampler']} N={r['steps']}", lambda r: f"{r['problem']} {r['sde']}",
                          lambda r: r["fd_floor"])  # fmt: skip
            mix = [r for r in rows if r["problem"] == "mixture8"]
            body += ["", "Mixture, fraction of samples off every mode:", ""]
            body += table(mix, lambda r: f"{r['sampler']} N={r['steps']}", lambda r: r["sde"], lambda r: r["off_mode"],
                          fmt="{:.4f}")  # fmt: skip
        elif section == "fast":
            rows = fast(args.quick, args.k_diffusion)
            plot_fast(rows, args.out / f"stochastic_solvers_{suffix}.png")
            body = fast_markdown(rows)
        elif section == "churn":
            rows, body = churn(args.quick)
        elif section == "subvp":
            rows, body = subvp(args.quick)
        elif section == "adaptive":
            rows, body = adaptive(args.quick)
        else:
            rows, body = likelihood(args.quick)
        write_csv(args.out / f"stochastic_solvers_{suffix}.csv", rows)
        elapsed = f"Section {section}: {time.perf_counter() - start:.0f} s.\n"
        (args.out / f"stochastic_solvers_{suffix}.md").write_text("\n".join(header + body) + "\n\n" + elapsed)
        print(elapsed, flush=True)


if __name__ == "__main__":
    main()
