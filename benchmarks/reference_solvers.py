"""The published fast ODE samplers, run side by side with scoresde's on the same problem (benchmark use only).

Their code is never part of scoresde: each run extracts it from a local snapshot of the public repository
(``/work/.mirror/<owner>+<name>/repo``, brought there by a ``git clone``/fetch of github.com/<owner>/<name>) into a
temporary directory and imports it from there. A family whose snapshot is absent is skipped with a message.

    LuChengTHU/dpm-solver   dpm_solver_pytorch.py    DPM-Solver / DPM-Solver++ (Lu et al. 2022a, 2022b)
    wl-zhao/UniPC           uni_pc.py                UniPC (Zhao et al. 2023)
    crowsonkb/k-diffusion   k_diffusion/sampling.py  Heun, DPM-2, LMS, DPM-Solver++(2M), (2S), (3M), (2M) SDE at
                                                     eta = 0 with the Heun term, DPM-Solver-fast

Every family is driven through the SDE's own alpha_t = m(t), sigma_t = s(t) and lambda_t = -log sigma(t) (an
adapter with their noise-schedule interface), so VP, sub-VP and VE all run, with the exact score as the model.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import types
from collections.abc import Callable, Iterator
from itertools import product
from pathlib import Path

from torch import Tensor

import scoresde

MIRROR = Path(os.environ.get("SCORESDE_MIRROR", "/work/.mirror"))
SOURCES = {
    "dpm-solver": ("LuChengTHU+dpm-solver", ["dpm_solver_pytorch.py"]),
    "unipc": ("wl-zhao+UniPC", ["uni_pc.py"]),
    "k-diffusion": ("crowsonkb+k-diffusion", ["k_diffusion/sampling.py"]),
}

METHODS = ("multistep", "singlestep")
SKIPS = ("logSNR", "time_uniform", "time_quadratic")
VARIANTS = ("bh1", "bh2")
Run = Callable[[Tensor], tuple[Tensor, int]]  # x_T -> (x_eps, score evaluations spent)


def _extract(family: str, tmp: Path) -> list[Path] | None:
    repo, paths = SOURCES[family]
    git_dir = MIRROR / repo / "repo"
    if not git_dir.exists():
        print(f"[reference] {family}: no snapshot at {git_dir}; skipped", flush=True)
        return None
    out = []
    for path in paths:
        text = subprocess.run(["git", "-C", str(git_dir), "show", f"HEAD:{path}"], capture_output=True, check=True)
        target = tmp / family.replace("-", "_") / Path(path).name
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(text.stdout)
        out.append(target)
    return out


def _import(name: str, path: Path, package: str | None = None) -> types.ModuleType:
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    if package:
        module.__package__ = package
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


def load() -> dict[str, types.ModuleType]:
    """Import the available reference implementations from a fresh temporary directory."""
    tmp = Path(tempfile.mkdtemp(prefix="scoresde_refs_"))
    modules = {}
    try:  # the modules are imported and need no file afterwards: the folder goes
        for family in SOURCES:
            files = _extract(family, tmp)
            if files is None:
                continue
            if family == "k-diffusion":
                # sampling.py imports its package's utils (PIL, safetensors, torchvision) and torchsde; the ODE
                # samplers use only utils.append_dims: stand-ins of ours keep those imports away.
                pkg = types.ModuleType("kdiff_ref")
                pkg.__path__ = [str(files[0].parent)]
                utils = types.ModuleType("kdiff_ref.utils")
                utils.append_dims = lambda x, n: x[(...,) + (None,) * (n - x.ndim)]
                sys.modules.update({"kdiff_ref": pkg, "kdiff_ref.utils": utils})
                sys.modules.setdefault("torchsde", types.ModuleType("torchsde"))
                modules[family] = _import("kdiff_ref.sampling", files[0], package="kdiff_ref")
            else:
                modules[family] = _import(f"{family.replace('-', '_')}_ref", files[0])
                modules[family].print = lambda *args, **kwargs: None  # UniPC prints at every step
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    return modules


class Schedule:
    """Their NoiseScheduleVP interface (alpha_t, sigma_t, lambda_t and its inverse) for any scoresde SDE."""

    def __init__(self, sde: scoresde.SDE) -> None:
        self.sde, self.T, self.total_N = sde, sde.T, 1000

    def marginal_log_mean_coeff(self, t: Tensor) -> Tensor:
        return self.sde.mean_scale(t).log()

    def marginal_alpha(self, t: Tensor) -> Tensor:
        return self.sde.mean_scale(t)

    def marginal_std(self, t: Tensor) -> Tensor:
        return self.sde.std(t)

    def marginal_lambda(self, t: Tensor) -> Tensor:
        return -self.sde.sigma(t).log()

    def inverse_lambda(self, lam: Tensor) -> Tensor:
        return self.sde.t_from_sigma((-lam).exp()).clamp(0.0, self.T)


class Counter:
    def __init__(self, fn: Callable[..., Tensor]) -> None:
        self.fn, self.calls = fn, 0

    def __call__(self, *args: Tensor, **kwargs: object) -> Tensor:
        self.calls += 1
        return self.fn(*args, **kwargs)


def runs(modules: dict, sde: scoresde.SDE, score_fn, nfe: int, eps: float) -> Iterator[tuple[str, str, Run]]:
    """(family, configuration, run) for every configuration of every family that fits in ``nfe`` evaluations."""
    sched = Schedule(sde)

    def noise_model(x: Tensor, t: Tensor) -> Tensor:
        return -sde.std(t).reshape(-1, *([1] * (x.ndim - 1))) * score_fn(x, t)

    if "dpm-solver" in modules:
        dpm = modules["dpm-solver"]
        for algo, method, order, skip in product(("dpmsolver++", "dpmsolver"), METHODS, (2, 3), SKIPS):
            if method == "multistep" and nfe < order:
                continue

            def run(x_T, algo=algo, method=method, order=order, skip=skip):
                model = Counter(noise_model)
                solver = dpm.DPM_Solver(model, sched, algorithm_type=algo)
                x = solver.sample(x_T, steps=nfe, t_start=sde.T, t_end=eps, order=order, skip_type=skip,
                                  method=method, lower_order_final=True)  # fmt: skip
                return x, model.calls

            yield "dpm-solver", f"{algo} {method} order={order} {skip}", run
    if "unipc" in modules:
        uni = modules["unipc"]
        for algo, variant, order, skip in product(("data_prediction", "noise_prediction"), VARIANTS, (2, 3), SKIPS):
            if nfe < order:
                continue

            def run(x_T, algo=algo, variant=variant, order=order, skip=skip):
                # their update is written for image batches (B, C, H, W): flat states ride as (B, D, 1, 1)
                model = Counter(lambda x, t: noise_model(x.flatten(1), t).view_as(x))
                solver = uni.UniPC(model, sched, algorithm_type=algo, variant=variant)
                x = solver.sample(x_T.reshape(*x_T.shape, 1, 1), steps=nfe, t_start=sde.T, t_end=eps, order=order,
                                  skip_type=skip, method="multistep", lower_order_final=True)  # fmt: skip
                return x.view_as(x_T), model.calls

            yield "unipc", f"{algo} {variant} order={order} {skip}", run
    if "k-diffusion" in modules:
        yield from _kdiffusion_runs(modules["k-diffusion"], sde, score_fn, nfe, eps)


def _no_noise(sigma: Tensor, sigma_next: Tensor) -> float:
    """A noise sampler for eta = 0 (never scaled above zero), which keeps torchsde's Brownian tree away."""
    return 0.0


def _kdiffusion_runs(mod, sde, score_fn, nfe: int, eps: float) -> Iterator[tuple[str, str, Run]]:
    """k-diffusion's samplers on x_tilde = x / m(t) with noise level sigma = s / m (their denoiser D)."""
    lo, hi = float(sde.sigma(eps)), float(sde.sigma(sde.T))
    m_T, m_eps = float(sde.mean_scale(sde.T)), float(sde.mean_scale(eps))

    def denoiser(x_tilde: Tensor, sigma: Tensor) -> Tensor:
        t = sde.t_from_sigma(sigma.clamp(lo, hi))
        m = sde.mean_scale(t).reshape(-1, *([1] * (x_tilde.ndim - 1)))
        s = sde.std(t).reshape(-1, *([1] * (x_tilde.ndim - 1)))
        x = m * x_tilde
        return (x + s**2 * score_fn(x, t)) / m

    grids = {
        "karras": lambda n: mod.get_sigmas_karras(n, lo, hi, rho=7.0, device="cpu")[:-1].double(),
        "exponential": lambda n: mod.get_sigmas_exponential(n, lo, hi, device="cpu")[:-1].double(),
    }
    # sampler -> (function, evaluations per step); sigma lists of n + 1 points, no trailing zero (we stop at eps)
    samplers = {
        "heun": (mod.sample_heun, 2),
        "dpm_2": (mod.sample_dpm_2, 2),
        "lms": (mod.sample_lms, 1),
        "dpmpp_2m": (mod.sample_dpmpp_2m, 1),
        # eta = 0 makes it the deterministic DPM-Solver++(3M); a noise sampler that is never called keeps torchsde away
        "dpmpp_3m": (lambda *a, **k: mod.sample_dpmpp_3m_sde(*a, eta=0.0, noise_sampler=_no_noise, **k), 1),
        # the sampler of their train.py (demo grid and FID): DPM-Solver++(2M) SDE at eta = 0 with the Heun-type term
        "dpmpp_2m_sde_heun": (
            lambda *a, **k: mod.sample_dpmpp_2m_sde(*a, eta=0.0, solver_type="heun", noise_sampler=_no_noise, **k),
            1,
        ),
        # DPM-Solver++(2S) (README: "(2S) and (2M) ... for improved quality with low numbers of steps"), eta = 0
        "dpmpp_2s": (lambda *a, **k: mod.sample_dpmpp_2s_ancestral(*a, eta=0.0, noise_sampler=_no_noise, **k), 2),
    }
    for name, (fn, per_step) in samplers.items():
        for gname, grid in grids.items():
            steps = nfe // per_step
            if steps < 1:
                continue

            def run(x_T, fn=fn, grid=grid, steps=steps):
                model = Counter(denoiser)
                x = fn(model, x_T / m_T, grid(steps + 1), disable=True)
                return m_eps * x, model.calls

            yield "k-diffusion", f"{name} {gname}", run

    def fast(x_T):
        model = Counter(denoiser)
        x = mod.sample_dpm_fast(model, x_T / m_T, lo, hi, nfe, disable=True)
        return m_eps * x, model.calls

    yield "k-diffusion", "dpm_fast", fast
