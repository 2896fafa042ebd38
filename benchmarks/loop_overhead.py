"""The solve loop's own cost: the library against minimal hand-written torch loops doing the same arithmetic.

    python benchmarks/loop_overhead.py [--repeats 7] [--out benchmarks/results/loop_overhead.csv]
    SCORESDE_REFERENCE_ROOT=... python benchmarks/loop_overhead.py   # adds the likelihood against the reference

Sampling (VP SDE, 100 steps, 10,000 x 64, float32, the trivial score s(x, t) = -x, no final denoising): the
library's ``sample`` (planning, coefficient table, counted score, noise source, non-finite check, timing) against a
loop of a few lines that draws the prior and applies the same update with precomputed float coefficients:

* ``pc_rd``: PC with the reverse-diffusion predictor and no corrector;
* ``pc_rd_langevin``: the same with the Langevin corrector (snr 0.16, one step, batch-mean norms);
* ``euler_maruyama``: Euler-Maruyama.

Both draw their noise from generators with the same seed in the same order, so they compute the same numbers; the
CSV stores the largest difference beside the times. Runs alternate (library, hand, library, ...), so a slow spell on
a shared machine hits both; the ratio is of the least CPU time (one thread) of ``--repeats`` runs each, which other
processes on a shared machine inflate least (the ratio of medians and the median wall times are stored too, and the
1-minute load average at the start and the end).
glibc's malloc thresholds are pinned first (:func:`pin_malloc`), so page faults do not fall at random on one side.
Target: ratio <= 1.25.

Likelihood (with ``SCORESDE_REFERENCE_ROOT``): ``log_likelihood`` on 2-D data (VP, a Gaussian target's exact
score, 1,000 points, float32, Rademacher Hutchinson estimator with one probe, RK45/dopri5 at rtol = atol = 1e-5)
against the reference implementation's ``likelihood.get_likelihood_fn`` (yang-song/score_sde_pytorch at
:data:`REFERENCE_COMMIT`, extracted at run time by :func:`provenance.reference_repo`; its code is never copied
here). The reference hard-codes image broadcasting, so it gets the same points as (B, 2, 1, 1) and a model
returning -std(t) x score, which its ``get_score_fn`` divides back. The NFE of each is stored too (the library's:
batched score calls). The library's default shares one step size across the batch under the max over samples of
each sample's error norm (see :mod:`scoresde.likelihood.ode`), stricter than the reference's RMS over the flattened
batch, so it may take more steps; the ``_per_sample`` rows give every sample its own step size
(``per_sample=True``). ``ratio_per_nfe`` is the time per batched evaluation. Target: ratio <= 1 for the default
rows.
"""

from __future__ import annotations

import argparse
import ctypes
import itertools
import math
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import provenance  # noqa: E402

import scoresde  # noqa: E402
from scoresde.solvers import EulerMaruyama, PredictorCorrector  # noqa: E402

REFERENCE = "yang-song/score_sde_pytorch"
REFERENCE_COMMIT = "cb1f359f4aadf0ff9a5e122fe8fffc9451fd6e44"
STEPS, BATCH, DIM, EPS, SNR = 100, 10_000, 64, 1e-3, 0.16
VARIANTS = {"": {}, "_per_sample": {"per_sample": True}}  # the library's likelihood settings: default, per sample


def trivial_score(x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    return -x


def _kernel(sde: scoresde.SDE, times: torch.Tensor) -> tuple[list[float], list[float]]:
    """r_i = m(t_i) / m(t_{i+1}) and v_i = s(t_i)^2 - r_i^2 s(t_{i+1})^2 of every interval, as floats."""
    m, s = sde.mean_scale(times), sde.std(times)
    r = m[:-1] / m[1:]
    return r.tolist(), (s[:-1] ** 2 - r**2 * s[1:] ** 2).tolist()


def hand_pc(sde: scoresde.SDE, seed: int, langevin: bool) -> torch.Tensor:
    """Reverse diffusion (and the batch-norm Langevin corrector), written out."""
    gen = torch.Generator().manual_seed(seed)
    times = torch.linspace(sde.T, EPS, STEPS + 1, dtype=torch.float64)
    r, v = _kernel(sde, times)
    tt = times.float()
    x = torch.randn(BATCH, DIM, generator=gen)
    for i in range(STEPS):
        t = tt[i].expand(BATCH)
        if langevin:
            score = trivial_score(x, t)
            z = torch.randn(x.shape, generator=gen)
            ratio = z.norm(dim=1).mean() / score.norm(dim=1).mean()
            step = 2 * r[i] ** 2 * (SNR * ratio) ** 2
            x = x + step * score + (2 * step) ** 0.5 * z
        x = (2 - r[i]) * x + v[i] * trivial_score(x, t) + math.sqrt(v[i]) * torch.randn(x.shape, generator=gen)
    return x


def hand_em(sde: scoresde.SDE, seed: int) -> torch.Tensor:
    """Euler-Maruyama, written out."""
    gen = torch.Generator().manual_seed(seed)
    times = torch.linspace(sde.T, EPS, STEPS + 1, dtype=torch.float64)
    f, g2, dt = sde.f(times).tolist(), sde.g2(times).tolist(), (times[:-1] - times[1:]).tolist()
    tt = times.float()
    x = torch.randn(BATCH, DIM, generator=gen)
    for i in range(STEPS):
        score = trivial_score(x, tt[i].expand(BATCH))
        noise = torch.randn(x.shape, generator=gen)
        x = x * (1 - f[i] * dt[i]) + (g2[i] * dt[i]) * score + math.sqrt(g2[i] * dt[i]) * noise
    return x


def library(sde: scoresde.SDE, seed: int, solver) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    x, _ = scoresde.sample(sde, trivial_score, (BATCH, DIM), solver=solver, steps=STEPS, eps=EPS, denoise=False,
                           generator=gen)  # fmt: skip
    return x


def race(a: Callable[[], torch.Tensor], b: Callable[[], torch.Tensor], repeats: int) -> dict:
    """CPU and wall times of a() and b(), run alternately, and the largest difference of their results.

    The ratio is of the least CPU time of each (the run least disturbed by other processes; the ratio of the medians
    beside it): with one thread the process's CPU time is the work done, and unlike the wall time it does not count
    the time the process waits for a core that other processes hold.
    """
    cpu: dict[str, list[float]] = {"a": [], "b": []}
    wall: dict[str, list[float]] = {"a": [], "b": []}
    out = {}
    for _ in range(repeats):
        for name, fn in (("a", a), ("b", b)):
            start, start_cpu = time.perf_counter(), time.process_time()
            out[name] = fn()
            cpu[name].append(time.process_time() - start_cpu)
            wall[name].append(time.perf_counter() - start)
    diff = float((out["a"].double() - out["b"].double()).abs().max()) if out["a"].shape == out["b"].shape else None
    ta, tb = min(cpu["a"]), min(cpu["b"])
    return {"library_cpu_s": round(ta, 4), "baseline_cpu_s": round(tb, 4), "ratio": round(ta / tb, 3),
            "median_ratio": round(statistics.median(cpu["a"]) / statistics.median(cpu["b"]), 3),
            "library_wall_s": round(statistics.median(wall["a"]), 4),
            "baseline_wall_s": round(statistics.median(wall["b"]), 4), "max_abs_diff": diff}  # fmt: skip


def sampling_rows(repeats: int) -> list[dict]:
    sde = scoresde.VPSDE()
    cases = {
        "pc_rd": (PredictorCorrector("reverse_diffusion", "none"), lambda s: hand_pc(sde, s, False)),
        "pc_rd_langevin": (
            PredictorCorrector("reverse_diffusion", "langevin", snr=SNR, snr_rule="batch"),
            lambda s: hand_pc(sde, s, True),
        ),
        "euler_maruyama": (EulerMaruyama(), lambda s: hand_em(sde, s)),
    }
    rows = []
    for name, (solver, hand) in cases.items():
        res = race(lambda solver=solver: library(sde, 0, solver), lambda hand=hand: hand(0), repeats)
        per_step = (res["library_cpu_s"] - res["baseline_cpu_s"]) / STEPS * 1e3
        rows.append({"case": name, "baseline": "hand-written torch loop", "steps": STEPS, "shape": f"{BATCH}x{DIM}",
                     **res, "overhead_ms_per_step": round(per_step, 3)})  # fmt: skip
        print(rows[-1], flush=True)
    return rows


class _ReferenceModel(torch.nn.Module):
    """The reference's "model" for VP continuous: labels = 999 t, and it divides the output by -std(t)."""

    def __init__(self, score: Callable, sde: scoresde.SDE) -> None:
        super().__init__()
        self.score, self.sde = score, sde

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        t = labels / 999
        flat = x.reshape(x.shape[0], -1)
        return (-self.sde.std(t)[:, None] * self.score(flat, t)).reshape(x.shape)


def likelihood_rows(repeats: int, n: int = 1000) -> list[dict]:
    from scoresde.oracle import Gaussian, eight_gaussians

    rows = []
    with tempfile.TemporaryDirectory(prefix="scoresde_ref_") as tmp:
        root = provenance.reference_repo(REFERENCE, REFERENCE_COMMIT, dest=tmp)
        sys.path.insert(0, str(root))
        try:
            import likelihood as ref_likelihood  # the reference's modules, from the extracted tree
            import sde_lib as ref_sde_lib
        finally:
            sys.path.remove(str(root))
        sde = scoresde.VPSDE()
        ref_sde = ref_sde_lib.VPSDE(0.1, 20.0, 1000)
        ref_fn = ref_likelihood.get_likelihood_fn(ref_sde, lambda v: v, "Rademacher", rtol=1e-5, atol=1e-5, eps=1e-5)
        offset = 7.0 + 1.0  # the reference adds 7 - inverse_scaler(-1) to its bits/dim
        targets = {
            "gaussian": Gaussian(torch.tensor([0.5, -0.3]), cov=torch.tensor([[0.4, 0.1], [0.1, 0.2]])),
            "eight_gaussians": eight_gaussians(),
        }
        for (name, target), (suffix, options) in itertools.product(targets.items(), VARIANTS.items()):
            score = target.score_fn(sde)
            x = target.sample(n, generator=torch.Generator().manual_seed(0), dtype=torch.float32)
            model = _ReferenceModel(score, sde)

            nfe: dict[str, int] = {}

            def ours(score=score, x=x, nfe=nfe, options=options):
                gen = torch.Generator().manual_seed(1)
                res = scoresde.log_likelihood(sde, score, x, divergence="rademacher", generator=gen, **options)
                nfe["ours"] = res.nfe
                return res.logp

            def theirs(model=model, x=x, nfe=nfe):
                torch.manual_seed(1)  # the reference draws its probes from the global generator
                bpd, _, nfe["reference"] = ref_fn(model, x.reshape(n, 2, 1, 1))
                return -(bpd - offset) * 2 * math.log(2)  # back to nats, summed over the 2 dims

            state = torch.random.get_rng_state()
            try:
                res = race(ours, theirs, repeats)
                # each against the exact log-density (of p_eps for the Gaussian, of the data for the mixture)
                exact = target.ode_log_prob(sde, x.double()) if name == "gaussian" else target.log_prob(x.double())
                res["ours_mean_abs_err"] = round(float((ours().double() - exact).abs().mean()), 5)
                res["reference_mean_abs_err"] = round(float((theirs().double() - exact).abs().mean()), 5)
            finally:
                torch.random.set_rng_state(state)
            res["max_abs_diff"] = None  # different probes: each is compared with the exact value instead
            res["ours_nfe"], res["reference_nfe"] = nfe["ours"], nfe["reference"]
            res["ratio_per_nfe"] = round(res["ratio"] * nfe["reference"] / nfe["ours"], 3)
            case, baseline = f"likelihood_2d_{name}_rademacher{suffix}", f"{REFERENCE}@{REFERENCE_COMMIT[:7]}"
            rows.append({"case": case, "baseline": baseline, "steps": None, "shape": f"{n}x2", **res})
            print(rows[-1], flush=True)
    return rows


def pin_malloc() -> bool:
    """Fix glibc's mmap and trim thresholds at 1 GiB, so freed 2.5 MB temporaries are reused instead of unmapped.

    Otherwise glibc maps every large temporary afresh while its adaptive threshold is low, and the page faults (half
    of either loop's CPU time here) fall on whichever loop runs while it is low: a 2x noise that has nothing to do
    with the loops. Returns False where this is not glibc.
    """
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(-3, 1 << 30)) and bool(libc.mallopt(-1, 1 << 30))  # M_MMAP_/M_TRIM_THRESHOLD
    except (OSError, AttributeError):
        return False


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/loop_overhead.csv"))
    parser.add_argument("--skip-likelihood", action="store_true")
    args = parser.parse_args(argv)
    torch.set_num_threads(1)
    pinned = pin_malloc()
    load_start = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    rows = sampling_rows(args.repeats)
    if not args.skip_likelihood:
        try:
            rows += likelihood_rows(args.repeats)
        except FileNotFoundError as err:
            print(f"likelihood against the reference skipped: {err}", flush=True)
    load_end = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    meta = provenance.record(threads=1, repeats=args.repeats, malloc_pinned=pinned,
                             load_average_1min=f"{load_start} at the start, {load_end} at the end")  # fmt: skip
    path = provenance.write_csv(args.out, rows, meta)
    print(f"wrote {path}")


if __name__ == "__main__":
    main()
