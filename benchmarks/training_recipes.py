"""Training recipes side by side on the oracle datasets: the library's against NVlabs/edm's own loss code.

Every recipe trains the same network (``scoresde.models.MLP`` with conf/model/mlp.yaml's settings) on the same data
with the same optimiser settings (AdamW 2e-3, 100 warm-up steps, clip 1, batch 128), steps and seed, through the
library's :class:`~scoresde.training.Trainer`, and is sampled and evaluated through the library's SDE:

* ``paper``: eps prediction, t ~ U(eps, T), lambda = s^2, EMA 0.999 (before issue 16; ``train=paper``);
* ``edm``: EDM preconditioning through the SDE (``prediction=edm``, sigma_data measured from the data), log-normal
  sigma (P_mean -1.2, P_std 1.2), lambda = 1 / c_out^2;
* ``edm2``: ``edm`` plus EDM2's learned uncertainty weighting (Karras et al. 2024);
* ``edm_log_sigma``, ``edm2_log_sigma``: the network's time input EDM's c_noise = ln(sigma) / 4 instead of 999 t / T;
* ``nvlabs_edm``: NVlabs/edm's own ``training.loss.EDMLoss`` and ``training.networks.EDMPrecond`` (extracted at run
  time at the pinned commit :data:`EDM_COMMIT` through ``benchmarks/provenance.py``; nothing copied), wrapping the
  same MLP (found by EDMPrecond's own class lookup), with the same sigma_data, converted to a score of the SDE by
  score = (m D(x / m; s / m) - x) / s^2.

Measures: KL(p_data || p_model) in nats/dim on ``--n-test`` test points with the exact divergence (the ODE solve's
own error, measured with the exact score at the same tolerance, subtracted), and Frechet distance / its floor (two
exact sample sets) of ODE samples (``ode`` dopri5 and ``unipc`` at 20 NFE) and of ``dpmpp_2m_sde`` at 20 NFE, with the
fraction of samples beyond the data's scale (|x| above the largest |x| of the training data).

    SCORESDE_REFERENCE_ROOT=SNAPSHOTS_DIR OMP_NUM_THREADS=1 python benchmarks/training_recipes.py \\
        --datasets mixture gaussian8 --sdes vp subvp ve --recipes paper edm edm2 nvlabs_edm --seed 0 --tag select

``--seed`` seeds the data split and the training; settings are chosen on seed 0 and checked on seeds 1 and up (held
out; the summary pairs recipes seed by seed). ``--lockstep STEPS`` instead trains ``edm_log_sigma`` and NVlabs' code
side by side on the same draws (:func:`lockstep`). Writes benchmarks/results/training_recipes/<tag>.csv with
provenance and rewrites summary.md from every stored CSV (``--summary`` does only the latter).
"""

from __future__ import annotations

import argparse
import importlib
import math
import sys
import time
import types
from pathlib import Path

import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from provenance import record, reference_repo, write_csv  # noqa: E402

import scoresde  # noqa: E402
from scoresde.data import gaussian, mixture  # noqa: E402
from scoresde.losses import dsm_loss_per_sample  # noqa: E402
from scoresde.metrics.frechet import frechet_distance  # noqa: E402
from scoresde.models import MLP, ScoreModel  # noqa: E402
from scoresde.models.parameterization import measure_sigma_data  # noqa: E402
from scoresde.training import DSMObjective, TrainConfig, Trainer  # noqa: E402

EDM_COMMIT = "008a4e5316c8e3bfe61a62f874bddba254295afb"
RESULTS = Path(__file__).parent / "results" / "training_recipes"
MLP_ARGS = {"width": 128, "num_blocks": 3, "time_embedding": "sinusoidal", "embed_dim": 64}
DATASETS = {"mixture": (lambda seed: mixture(seed=seed), 9.0), "gaussian8": (lambda seed: gaussian(8, seed=seed), 8.7)}
SDES = {"vp": lambda vmax: scoresde.VPSDE(), "subvp": lambda vmax: scoresde.SubVPSDE(),
        "ve": lambda vmax: scoresde.VESDE(0.01, vmax)}  # fmt: skip


def library_recipe(name: str, sde, data: torch.Tensor, event_shape) -> tuple[nn.Module, nn.Module]:
    """(score model, objective) of one of the library's recipes."""
    net = MLP(event_shape=event_shape, **MLP_ARGS)
    if name == "paper":
        return ScoreModel(net, sde, prediction="eps"), DSMObjective()
    time_input = "log_sigma" if name.endswith("_log_sigma") else "continuous"
    model = ScoreModel(net, sde, prediction="edm", sigma_data=measure_sigma_data(data), time_input=time_input)
    return model, DSMObjective(weighting="edm", noise="lognormal", uncertainty=name.startswith("edm2"))


class ReferenceScore(nn.Module):
    """NVlabs/edm's EDMPrecond as a score of ``sde``: x^ = x / m, sigma = s / m, score = (m D(x^; sigma) - x) / s^2."""

    def __init__(self, precond: nn.Module, sde) -> None:
        super().__init__()
        self.precond, self.sde = precond, sde

    def check_sde(self, sde) -> None:  # the library's solvers ask score models for their SDE
        pass

    def forward(self, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
        t = t.reshape(-1).expand(x.shape[0]) if t.numel() == 1 else t
        m, s = self.sde.mean_scale(t)[:, None], self.sde.std(t)[:, None]
        d = self.precond((x / m).float()[:, :, None, None], (s / m).float()).reshape(x.shape).to(x.dtype)
        return (m * d - x) / s**2


class ScoresdeMLP(nn.Module):
    """The library's MLP behind EDMPrecond's interface ``model(x, noise_labels, class_labels)`` on (B, D, 1, 1)."""

    def __init__(self, img_resolution, in_channels, out_channels, label_dim=0, event_shape=(2,)):
        super().__init__()
        self.net = MLP(event_shape=tuple(event_shape), **MLP_ARGS)

    def forward(self, x, noise_labels, class_labels=None, augment_labels=None):
        return self.net(x.reshape(x.shape[0], -1), noise_labels).reshape(x.shape)


class ReferenceObjective:
    """NVlabs/edm's EDMLoss on data reshaped to (B, D, 1, 1) images, averaged (EDM sums; the mean only rescales)."""

    def __init__(self, loss) -> None:
        self.loss = loss

    def __call__(self, model: ReferenceScore, x0: torch.Tensor, generator=None, y=None) -> torch.Tensor:
        return self.loss(model.precond, x0[:, :, None, None]).mean()


def reference_recipe(root: Path, sde, data: torch.Tensor, event_shape) -> tuple[nn.Module, ReferenceObjective]:
    """EDMPrecond(MLP) and EDMLoss from the NVlabs/edm work tree at ``root``."""
    sys.path.insert(0, str(root))
    try:  # dnnlib.util imports requests for downloads this benchmark never makes
        import requests  # noqa: F401
    except ImportError:
        sys.modules["requests"] = types.ModuleType("requests")
    networks, loss = importlib.import_module("training.networks"), importlib.import_module("training.loss")

    networks.ScoresdeMLP = ScoresdeMLP
    sd = measure_sigma_data(data)
    precond = networks.EDMPrecond(img_resolution=1, img_channels=event_shape[0], sigma_data=sd,
                                  model_type="ScoresdeMLP", event_shape=tuple(event_shape))  # fmt: skip
    return ReferenceScore(precond, sde), ReferenceObjective(loss.EDMLoss(sigma_data=sd))


class _FixedDraws:
    """Stands in for ``torch`` inside NVlabs' loss module: randn / randn_like return given tensors, in call order."""

    def __init__(self, draws: list[torch.Tensor]) -> None:
        self.draws = draws

    def randn(self, *args, **kwargs) -> torch.Tensor:
        return self.draws.pop(0)

    def randn_like(self, *args, **kwargs) -> torch.Tensor:
        return self.draws.pop(0)

    def __getattr__(self, name: str):
        return getattr(torch, name)


def lockstep(edm_root: Path, dataset: str, sde_name: str, seed: int, steps: int = 50, batch: int = 128) -> dict:
    """Train the library's ``edm_log_sigma`` recipe and NVlabs' EDMLoss + EDMPrecond side by side on the same draws.

    Both start from the same MLP weights and see the same batches; each step the library's DSMObjective draws
    (ln sigma standard normal, z) from a generator, and NVlabs' EDMLoss is handed the same two tensors in place of its
    ``torch.randn`` / ``torch.randn_like`` (its noise is n = sigma z). If the two recipes are one objective, the
    per-example losses agree at step 0 up to float32 rounding and the weights stay together under Adam.

    Returns the largest relative per-example loss gap at step 0, the largest relative gap of the batch losses over
    the steps, and the gap of the weights after ``steps`` steps relative to how far they moved (weight_change: that
    move relative to the initial weights).
    """
    make, vmax = DATASETS[dataset]
    data = make(seed)
    sde = SDES[sde_name](vmax)
    with torch.random.fork_rng():  # one initialisation for both, and the caller's global RNG left as it was
        torch.manual_seed(seed)
        ours, objective = library_recipe("edm_log_sigma", sde, data.train, data.event_shape)
        torch.manual_seed(seed)
        ref, _ = reference_recipe(edm_root, sde, data.train, data.event_shape)
    loss_module = importlib.import_module("training.loss")
    edm_loss = loss_module.EDMLoss(sigma_data=float(ours.sigma_data))
    ref_params = dict(ref.precond.model.net.named_parameters())
    assert all(torch.equal(p, ref_params[k]) for k, p in ours.net.named_parameters())  # one initialisation
    opt_ours = torch.optim.Adam(ours.net.parameters(), lr=2e-3)
    opt_ref = torch.optim.Adam(ref.precond.parameters(), lr=2e-3)
    gen, batch_gen = torch.Generator().manual_seed(seed), torch.Generator().manual_seed(seed)
    start = torch.cat([p.detach().reshape(-1) for p in ours.net.parameters()])
    per_example_gap, batch_gap = 0.0, 0.0
    for step in range(steps):
        x0 = data.train[torch.randint(len(data.train), (batch,), generator=batch_gen)]
        replay = _copy(gen)
        ln_sigma_normal = torch.randn(batch, generator=replay, dtype=torch.float64)  # DSMObjective's draw order
        z = torch.randn(x0.shape, generator=replay, dtype=x0.dtype)
        if step == 0:
            per_example = dsm_loss_per_sample(sde, ours, x0, generator=_copy(gen), weighting="edm",
                                              noise="lognormal", sigma_data=float(ours.sigma_data))  # fmt: skip
        loss_ours = objective(ours, x0, generator=gen)
        loss_module.torch = _FixedDraws([ln_sigma_normal.float().reshape(-1, 1, 1, 1), z[:, :, None, None]])
        try:
            ref_per_example = edm_loss(ref.precond, x0[:, :, None, None]).reshape(batch, -1).mean(1)
        finally:
            loss_module.torch = torch
        if step == 0:
            per_example_gap = float(((per_example - ref_per_example).abs() / ref_per_example).max().detach())
        loss_ref = ref_per_example.mean()
        batch_gap = max(batch_gap, float((loss_ours - loss_ref).abs().detach() / loss_ref))
        for opt, loss in ((opt_ours, loss_ours), (opt_ref, loss_ref)):
            opt.zero_grad()
            loss.backward()
            opt.step()
    a = torch.cat([p.detach().reshape(-1) for p in ours.net.parameters()])
    b = torch.cat([p.detach().reshape(-1) for p in ref.precond.model.net.parameters()])
    return {"dataset": dataset, "sde": sde_name, "seed": seed, "steps": steps, "per_example_gap": per_example_gap,
            "batch_loss_gap": batch_gap, "weight_gap": float((a - b).norm() / (b - start).norm()),
            "weight_change": float((b - start).norm() / start.norm())}  # fmt: skip


def _copy(gen: torch.Generator) -> torch.Generator:
    """A generator in ``gen``'s state (its next draws are gen's)."""
    out = torch.Generator()
    out.set_state(gen.get_state())
    return out


def kl_per_dim(sde, model, oracle, x: torch.Tensor, rtol: float) -> tuple[float, float]:
    """KL(p_data || p_model) per dim on x: mean(log p - log q) / D minus the solver's own error, and its s.e."""
    x = x.double()
    with torch.enable_grad():
        q = scoresde.log_likelihood(sde, model, x, divergence="exact", rtol=rtol, atol=rtol).logp
        q_exact = scoresde.log_likelihood(sde, oracle.score_fn(sde), x, divergence="exact", rtol=rtol, atol=rtol).logp
    p = oracle.log_prob(x)
    gap = (p - q - (p - q_exact)).detach() / x.shape[1]  # the solver error (p - q_exact) subtracted per point
    kl = float((p - q).mean() / x.shape[1] - (p - q_exact).mean() / x.shape[1])
    return kl, float(gap.std() / math.sqrt(x.shape[0]))


def sample_quality(sde, model, oracle, scale: float, n: int, seed: int) -> dict:
    """FD / floor and the fraction beyond the data's scale for ode, unipc@20 and dpmpp_2m_sde@20."""
    gen = torch.Generator().manual_seed(10_000 + seed)
    ref, ref2 = oracle.sample(n, generator=gen).double(), oracle.sample(n, generator=gen).double()

    def fd(a: torch.Tensor, b: torch.Tensor) -> float:
        return frechet_distance(a.mean(0).numpy(), a.T.cov().numpy(), b.mean(0).numpy(), b.T.cov().numpy())

    floor, out = fd(ref, ref2), {}
    for name, opts in (("ode", {"solver": "ode"}), ("unipc20", {"solver": "unipc", "nfe": 20}),
                       ("dpmpp_2m_sde20", {"solver": "dpmpp_2m_sde", "nfe": 20})):  # fmt: skip
        with torch.no_grad():
            x, _ = scoresde.sample(sde, model, (n, ref.shape[1]), generator=torch.Generator().manual_seed(seed), **opts)
        x = x.double()
        finite = torch.isfinite(x).all(1)
        out[f"fd_floor_{name}"] = fd(x[finite], ref) / floor if finite.sum() > 2 else float("inf")
        out[f"beyond_{name}"] = float((x.norm(dim=1) > scale).double().mean() + (~finite).double().mean())
        out[f"max_norm_{name}"] = float(x[finite].norm(dim=1).max())
    return out


def run_one(dataset: str, sde_name: str, recipe: str, seed: int, steps: int, n_test: int, n_samples: int,
            rtol: float, edm_root: Path | None) -> dict:  # fmt: skip
    make, vmax = DATASETS[dataset]
    data = make(seed)
    sde = SDES[sde_name](vmax)
    torch.manual_seed(seed)
    if recipe == "nvlabs_edm":
        model, objective = reference_recipe(edm_root, sde, data.train, data.event_shape)
    else:
        model, objective = library_recipe(recipe, sde, data.train, data.event_shape)
    config = TrainConfig(steps=steps, objective=objective, checkpoint_every=steps, log_every=max(steps // 4, 1))
    start = time.perf_counter()
    trainer = Trainer(model, data.train, config, seed=seed, progress=False)
    result = trainer.fit()
    train_s = time.perf_counter() - start
    ema = trainer.ema.model.eval()
    scale = float(data.train.norm(dim=1).max())
    kl, kl_se = kl_per_dim(sde, ema, data.oracle, data.test[:n_test], rtol)
    row = {"dataset": dataset, "sde": sde_name, "recipe": recipe, "seed": seed, "steps": steps, "kl": kl,
           "kl_se": kl_se, "final_loss": result.loss, "train_s": train_s, "data_scale": scale}  # fmt: skip
    row.update(sample_quality(sde, ema, data.oracle, scale, n_samples, seed))
    row["total_s"] = time.perf_counter() - start
    return row


def _rows(results: Path, split: str) -> tuple[list[dict], list[str]]:
    """The stored rows of a split and one provenance line per file."""
    from provenance import read_csv

    rows, provenance = [], []
    for f in sorted(results.glob(f"{split}_*.csv")):
        meta, body = read_csv(f)
        rows += body
        provenance.append(f"- `{f.name}`: commit {meta.get('commit')}, `{meta.get('command')}`, "
                          f"{meta.get('machine')}, threads {meta.get('threads')}")  # fmt: skip
    return rows, provenance


def paired_differences(rows: list[dict], recipe: str, against: str = "nvlabs_edm") -> list[dict]:
    """Per (dataset, SDE): mean and standard error over seeds of recipe's metric minus against's, same seeds.

    Seeds present for both recipes only (seed 0, the selection split, left out); the first stored row of a setting.
    """
    first: dict[tuple, dict] = {}
    for r in rows:
        first.setdefault((r["dataset"], r["sde"], r["recipe"], int(r["seed"])), r)
    out = []
    for dataset, sde in sorted({(k[0], k[1]) for k in first}, key=lambda k: (k[0], list(SDES).index(k[1]))):
        seeds = sorted(k[3] for k in first if k[:3] == (dataset, sde, recipe) and k[3] > 0
                       and (dataset, sde, against, k[3]) in first)  # fmt: skip
        if len(seeds) < 2:
            continue
        row = {"dataset": dataset, "sde": sde, "recipe": recipe, "against": against, "seeds": seeds}
        for metric in ("kl", "fd_floor_ode", "fd_floor_unipc20"):
            ours = [float(first[(dataset, sde, recipe, s)][metric]) for s in seeds]
            theirs = [float(first[(dataset, sde, against, s)][metric]) for s in seeds]
            d = torch.tensor(ours, dtype=torch.float64) - torch.tensor(theirs, dtype=torch.float64)
            row[metric] = (float(d.mean()), float(d.std() / math.sqrt(len(seeds))))
            row[f"{metric}_wins"] = int((d <= 0).sum())
        out.append(row)
    return out


def summary(results: Path = RESULTS) -> Path:
    """summary.md: every stored row (selection split ``select_*``, held-out ``heldout_*`` and ``paired_*``) as one
    table each, the paired differences over seeds, and the lockstep check (``lockstep*.csv``)."""
    from provenance import read_csv

    lines = ["# Training recipes on the oracle datasets (benchmarks/training_recipes.py)", ""]
    lines += ["KL(p_data || p_model) in nats/dim (400 test points, exact divergence, the solver's error subtracted; "
              "± the standard error over points); FD / floor of 2,000 samples (floor: two exact sample sets); "
              "'beyond': fraction of samples with |x| above the training data's largest.", ""]  # fmt: skip
    held_out: list[dict] = []
    for split in ("select", "heldout"):
        rows, provenance = _rows(results, split)
        if split == "heldout":
            more, more_provenance = _rows(results, "paired")
            rows, provenance = rows + more, provenance + more_provenance
            held_out = rows
        if not rows:
            continue
        title = (
            "selection split (seed 0)" if split == "select" else "held-out split (seeds 1 and up: data and training)"
        )
        lines += [f"## {title}", ""]
        header = ("| data | SDE | recipe | seed | KL | ODE FD/floor | unipc@20 | dpmpp_2m_sde@20 | beyond (ode/unipc) "
                  "| train s |")  # fmt: skip
        lines += [header, "|---|---|---|---|---|---|---|---|---|---|"]
        order = {"paper": 0, "edm": 1, "edm2": 2, "edm_log_sigma": 3, "edm2_log_sigma": 4, "nvlabs_edm": 5}
        rows.sort(key=lambda r: (r["dataset"], list(SDES).index(r["sde"]), order[r["recipe"]], int(r["seed"])))
        seen = set()  # a setting run twice (nvlabs_edm reproduces bit for bit) is shown once
        for r in rows:
            if (key := (r["dataset"], r["sde"], r["recipe"], r["seed"])) in seen:
                continue
            seen.add(key)
            v = {k: float(r[k]) for k in r if k not in ("dataset", "sde", "recipe", "seed")}
            fds = " | ".join(f"{v[f'fd_floor_{k}']:.2f}" for k in ("ode", "unipc20", "dpmpp_2m_sde20"))
            lines.append(f"| {r['dataset']} | {r['sde']} | {r['recipe']} | {r['seed']} | {v['kl']:.4f} ± "
                         f"{v['kl_se']:.4f} | {fds} | {v['beyond_ode']:.4f} / {v['beyond_unipc20']:.4f} | "
                         f"{v['train_s']:.0f} |")  # fmt: skip
        lines += ["", *provenance, ""]
    pairs = [("edm2", "nvlabs_edm"), ("edm2_log_sigma", "nvlabs_edm"), ("edm_log_sigma", "nvlabs_edm"),
             ("edm2_log_sigma", "edm_log_sigma")]  # fmt: skip
    paired = [d for recipe, against in pairs for d in paired_differences(held_out, recipe, against)]
    if paired:
        lines += ["## paired over held-out seeds: recipe minus another", "",
                  "Mean ± standard error over seeds of the per-seed difference (same seed: same data, same initial "
                  "weights; negative: the first recipe is better); 'wins': seeds where it is no worse. "
                  "`edm_log_sigma` against `nvlabs_edm` is one objective on other random draws (see the lockstep "
                  "check below): its spread is the training noise.", "",
                  "| data | SDE | recipe | against | seeds | KL diff | wins | ODE FD/floor diff | wins | unipc@20 diff "
                  "| wins |", "|---|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for d in paired:
            n = len(d["seeds"])
            cells = " | ".join(f"{d[m][0]:+.4f} ± {d[m][1]:.4f} | {d[f'{m}_wins']}/{n}" if m == "kl" else
                               f"{d[m][0]:+.2f} ± {d[m][1]:.2f} | {d[f'{m}_wins']}/{n}"
                               for m in ("kl", "fd_floor_ode", "fd_floor_unipc20"))  # fmt: skip
            lines.append(f"| {d['dataset']} | {d['sde']} | {d['recipe']} | {d['against']} | "
                         f"{','.join(map(str, d['seeds']))} | {cells} |")  # fmt: skip
        lines.append("")
    for f in sorted(results.glob("lockstep*.csv")):
        meta, body = read_csv(f)
        lines += ["## lockstep: edm_log_sigma and NVlabs' EDMLoss + EDMPrecond on the same draws", "",
                  "Same initial weights, batches, ln sigma and z; Adam 2e-3 on each. Per-example loss gap at step 0 "
                  "(relative), largest batch-loss gap over the steps (relative), weight gap after the last step "
                  "relative to how far the weights moved.", "",
                  "| data | SDE | seed | steps | per-example gap | batch-loss gap | weight gap | weights moved |",
                  "|---|---|---|---|---|---|---|---|"]  # fmt: skip
        for r in body:
            lines.append(f"| {r['dataset']} | {r['sde']} | {r['seed']} | {r['steps']} | "
                         f"{float(r['per_example_gap']):.1e} | {float(r['batch_loss_gap']):.1e} | "
                         f"{float(r['weight_gap']):.1e} | {float(r['weight_change']):.2f} |")  # fmt: skip
        lines += ["", f"- `{f.name}`: commit {meta.get('commit')}, `{meta.get('command')}`, {meta.get('machine')}, "
                  f"threads {meta.get('threads')}", ""]  # fmt: skip
    out = results / "summary.md"
    out.write_text("\n".join(lines) + "\n")
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--datasets", nargs="+", default=list(DATASETS), choices=list(DATASETS))
    parser.add_argument("--sdes", nargs="+", default=list(SDES), choices=list(SDES))
    parser.add_argument("--recipes", nargs="+", default=["paper", "edm", "edm2", "nvlabs_edm"],
                        choices=["paper", "edm", "edm2", "edm_log_sigma", "edm2_log_sigma", "nvlabs_edm"])  # fmt: skip
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--steps", type=int, default=2000)
    parser.add_argument("--n-test", type=int, default=400)
    parser.add_argument("--n-samples", type=int, default=2000)
    parser.add_argument("--rtol", type=float, default=1e-5)
    parser.add_argument("--tag", default="select")
    parser.add_argument("--summary", action="store_true", help="only rewrite summary.md from the stored CSVs")
    parser.add_argument("--lockstep", type=int, default=0, metavar="STEPS",
                        help="instead: lockstep() for STEPS steps per dataset and SDE into <tag>.csv")  # fmt: skip
    args = parser.parse_args()
    if args.summary:
        print(f"wrote {summary().relative_to(RESULTS.parent.parent.parent)}")
        return
    torch.set_num_threads(1)
    if args.lockstep:
        edm_root = reference_repo("NVlabs/edm", EDM_COMMIT)
        meta = record(threads=1, seed=args.seed, steps=args.lockstep, edm_commit=EDM_COMMIT)
        rows = [lockstep(edm_root, d, sde, args.seed, args.lockstep) for d in args.datasets for sde in args.sdes]
        for row in rows:
            print(row, flush=True)
        print(f"wrote {write_csv(RESULTS / f'{args.tag}.csv', rows, meta).name}; summary: {summary().name}")
        return
    edm_root = None
    if "nvlabs_edm" in args.recipes:
        edm_root = reference_repo("NVlabs/edm", EDM_COMMIT)
    meta = record(threads=1, seed=args.seed, steps=args.steps, n_test=args.n_test, n_samples=args.n_samples,
                  rtol=args.rtol, edm_commit=EDM_COMMIT)  # fmt: skip
    rows, out = [], RESULTS / f"{args.tag}.csv"
    for dataset in args.datasets:
        for sde_name in args.sdes:
            for recipe in args.recipes:
                row = run_one(dataset, sde_name, recipe, args.seed, args.steps, args.n_test, args.n_samples,
                              args.rtol, edm_root)  # fmt: skip
                rows.append(row)
                print(", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in row.items()),
                      flush=True)  # fmt: skip
                write_csv(out, rows, meta)
    print(f"wrote {out.name}; summary: {summary().name}")


if __name__ == "__main__":
    main()
