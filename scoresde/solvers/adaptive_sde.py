"""Adaptive step sizes for the reverse SDE, per sample (Jolicoeur-Martineau et al. 2021, "Gotta Go Fast", Alg. 1).

In decreasing time, the reverse SDE (Song et al. 2021, eq. 6) reads dx = b(x, t) dt' + g(t) dw with
b(x, t) = -f(t) x + g(t)^2 s(x, t) and dt' = -dt. One attempt from t with step h uses ONE Gaussian z for two
methods:

    x'  = x + h b(x, t) + sqrt(h) g(t) z                          (Euler-Maruyama)
    x~  = x + h b(x', t - h) + sqrt(h) g(t - h) z
    x'' = (x' + x~) / 2                                           (stochastic improved Euler)

and their difference estimates the local error, measured in the mixed norm

    E = || (x' - x'') / delta ||_2 / sqrt(D),   delta = max(eps_abs, eps_rel max(|x'|, |x'_prev|))   (elementwise)

with x'_prev the previous accepted x'. If E <= 1 the step is accepted with x'' (extrapolation: the more accurate
of the two); either way the next step is h <- min(t - t_end, theta h E^(-r)) with safety theta = 0.9 and r = 0.9.

Every sample keeps its own time t_b, step h_b and x'_prev: each iteration evaluates the score only on the samples
still running, at their own times, and every sample's noise is keyed by (seed, its index in the batch) and its
own time or attempt count (see "Rejections and the noise" below). So a sample's result does not depend on the
rest of its batch, and one hard sample does not set the steps of the others. Two score evaluations per attempt;
NFE per sample (and what a budget forced) are reported in ``SampleInfo.extras``.

Rejections and the noise. In the paper a rejected attempt is retried with a fresh z (``retry="redraw"``). That
is not exact: the accepted increments are selected for small local error, which biases the samples
(docs/guides/defaults.md). By default (``retry="bridge"``) every sample's noise is the increment of its own
Brownian path (:class:`.noise.BrownianNoise`, keyed by (seed, index); the run's own ``noise="brownian"`` source
if given), so a retry over a shorter interval is the Brownian bridge of the same path and the result is unbiased,
at the cost of one Brownian-tree query per attempt (about 25 hashed normal draws
per coordinate: negligible beside a network, dominant beside the analytic oracle).
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import torch
from torch import Tensor

from .._utils import append_dims
from .._validation import check_choice, check_number
from .base import Solver, StepContext
from .noise import BrownianNoise, KeyedNoise, hash_words, keyed_normal


class ForcedStepWarning(RuntimeWarning):
    """An ``nfe`` budget ran out before the adaptive solve reached its end: samples took one forced final step."""


class AdaptiveSDE(Solver):
    """The adaptive reverse-SDE solver of Jolicoeur-Martineau et al. (2021) with per-sample time and step size.

    ``steps`` counts output intervals (default 1: one adaptive solve from T to eps). With a budget
    (``sample(..., nfe=K)``) the solve never spends more than K score calls: once only one more attempt fits,
    every running sample takes one final, unconditionally accepted step to the end of the interval. Such a step can
    be long (docs/guides/defaults.md), so it warns (:class:`ForcedStepWarning`) and ``SampleInfo.extras`` reports how
    far it jumped: ``forced_jump_max`` / ``forced_jump_mean`` (the forced step's length in t, over the forced
    samples) and ``forced_from_sigma_max`` (the largest noise level sigma(t) a forced step started from).

    Args:
        eps_abs: Absolute tolerance (paper: 0.0078, for data in [-1, 1]).
        eps_rel: Relative tolerance (paper: 0.01-0.05).
        safety: theta, the safety factor of the step-size update.
        exponent: r, the exponent of the step-size update (paper: 0.9).
        h_init: First step, as a fraction of T - eps.
        retry: Noise of an attempt after a rejection: "bridge" (default: every sample's own Brownian path, so a
            retry reuses the same path, unbiased) or "redraw" (a fresh draw, as in the paper: faster, biased).
        grid: Grid of the output intervals (default "uniform").
        rho: Exponent of the "karras" grid.
    """

    order = 1.0
    default_steps = 1
    nfe_per_step = 2  # per attempt
    adaptive = True  # a budget keeps the output intervals and is spent by step()
    reported = ("eps_abs", "eps_rel", "safety", "exponent", "h_init", "retry")

    def __init__(
        self,
        eps_abs: float = 0.0078,
        eps_rel: float = 0.05,
        safety: float = 0.9,
        exponent: float = 0.9,
        h_init: float = 0.01,
        retry: str = "bridge",
        *,
        grid: str | None = None,
        rho: float = 7.0,
    ) -> None:
        super().__init__(grid=grid, rho=rho)
        self.eps_abs = check_number("eps_abs", eps_abs, 0, math.inf, "(]")
        self.eps_rel = check_number("eps_rel", eps_rel, 0, math.inf, "(]")
        self.safety = check_number("safety", safety, 0, 1, "(]")
        self.exponent = check_number("exponent", exponent, 0, math.inf, "(]")
        self.h_init = check_number("h_init", h_init, 0, 1, "(]")
        self.retry = check_choice("retry", retry, ("bridge", "redraw"))

    def _state(self, x: Tensor, ctx: StepContext) -> dict[str, Any]:
        mem = ctx.memory
        if not mem:
            batch, dev = x.shape[0], x.device
            keyed = ctx.noise_source if isinstance(ctx.noise_source, KeyedNoise) else None
            seed = keyed.seed if keyed else int(torch.randint(2**62, (), generator=ctx.generator, device=dev))
            offset = keyed.offset if keyed else 0  # rows keyed by their index in the whole run
            c = ctx.coeffs
            path = ctx.noise_source if isinstance(ctx.noise_source, BrownianNoise) else None
            if path is None and self.retry == "bridge":
                path = BrownianNoise(seed, c.t[-1], c.t[0], offset=offset)
            mem.update(seed=seed, offset=offset, path=path, nfe=torch.zeros(batch, dtype=torch.int64, device=dev),
                       x_prev=x, forced=0,
                       h=torch.full((batch,), self.h_init * (ctx.coeffs.t[0] - ctx.coeffs.t[-1]), dtype=torch.float64,
                                    device=dev), rejected=0)  # fmt: skip
        return mem

    def _noise(self, like: Tensor, idx: Tensor, t0: Tensor, t1: Tensor, mem: dict, ctx: StepContext) -> Tensor:
        """z of one attempt, and W(t1) of the sample's path (None without a Brownian source)."""
        source = mem["path"]
        if source is not None:
            if "w" not in mem:
                mem["w"] = source.path(mem["x_prev"], torch.full_like(t0, ctx.coeffs.t[0]).expand(mem["nfe"].shape[0]),
                                       torch.arange(mem["nfe"].shape[0], device=like.device))  # fmt: skip
            w1 = source.path(like, t1, idx)
            scale = append_dims((t0 - t1).clamp_min(1e-300).sqrt().to(like.dtype), like.ndim)
            return (mem["w"][idx] - w1) / scale, w1
        s = mem["seed"]
        # the sample's index in the run and its attempt count key its draw
        key = hash_words(s & 0xFFFFFFFF, s >> 32, idx + mem["offset"], mem["nfe"][idx])
        return keyed_normal(key, tuple(like.shape[1:]), like.dtype, like.device), None

    def _drift(self, x: Tensor, t: Tensor, ctx: StepContext) -> tuple[Tensor, Tensor]:
        """The reverse drift b(x, t) (shape of x) and g(t) (shape (B,)) at per-sample times t (float64)."""
        co = ctx.sde.coefficients(t)
        f, g2 = co.f.to(x.dtype), co.g2.to(x.dtype)
        score = ctx.score(x, t.to(x.dtype))
        return append_dims(-f, x.ndim) * x + append_dims(g2, x.ndim) * score, g2.sqrt()

    def step(self, x: Tensor, i: int, ctx: StepContext) -> Tensor:
        mem = self._state(x, ctx)
        t_end = ctx.coeffs.t[i + 1]
        t = torch.full((x.shape[0],), ctx.coeffs.t[i], dtype=torch.float64, device=x.device)
        x = x.clone()
        running = torch.arange(x.shape[0], device=x.device)
        while running.numel():
            left = math.inf if ctx.nfe_budget is None else ctx.nfe_budget - ctx.score.calls
            force = left < 2 * self.nfe_per_step  # room for one more attempt only: finish every running sample
            idx = running
            x0, t0, h_prev = x[idx], t[idx], mem["h"][idx]
            h = torch.minimum(h_prev, t0 - t_end) if not force else t0 - t_end
            last = h >= t0 - t_end
            t1 = torch.where(last, torch.full_like(t0, t_end), t0 - h)
            z, w1 = self._noise(x0, idx, t0, t1, mem, ctx)
            hx = append_dims(h.to(x.dtype), x.ndim)
            b0, g0 = self._drift(x0, t0, ctx)
            x1 = x0 + hx * b0 + hx.sqrt() * append_dims(g0, x.ndim) * z
            b1, g1 = self._drift(x1, t1, ctx)
            x2 = 0.5 * (x1 + x0 + hx * b1 + hx.sqrt() * append_dims(g1, x.ndim) * z)
            mem["nfe"][idx] += self.nfe_per_step
            delta = torch.maximum(x1.abs(), mem["x_prev"][idx].abs()).mul(self.eps_rel).clamp_min(self.eps_abs)
            err = ((x1 - x2) / delta).flatten(1).pow(2).mean(1).sqrt().double()
            accept = (err <= 1) | force
            done = idx[accept]
            x[done], t[done] = x2[accept], t1[accept]
            mem["x_prev"] = mem["x_prev"].index_put((done,), x1[accept])
            if w1 is not None:  # the path's value at the sample's new time: the start of its next attempt
                mem["w"] = mem["w"].index_put((done,), w1[accept])
            mem["rejected"] += int((~accept).sum())
            mem["forced"] += int(force) * idx.numel()
            if force:
                self._report_forced(h, t0, t_end, ctx)
            h_new = self.safety * h * err.clamp_min(1e-10).pow(-self.exponent)
            # a sample that reached the end keeps its last proposed step for the next output interval
            mem["h"][idx] = torch.where(accept & last, torch.maximum(h_new, h), h_new)
            running = idx[~(accept & last)]
        nfe = mem["nfe"]
        ctx.stats.update(nfe_per_sample=nfe.tolist(), nfe_mean=float(nfe.double().mean()), nfe_max=int(nfe.max()),
                         sample_evaluations=int(nfe.sum()), rejected_attempts=mem["rejected"],
                         forced_by_budget=mem["forced"])  # fmt: skip
        return x

    def _report_forced(self, h: Tensor, t0: Tensor, t_end: float, ctx: StepContext) -> None:
        """Record the forced step of every running sample in ``ctx.stats`` and warn once per run."""
        jumps = ctx.memory.setdefault("jumps", [])
        jumps.extend(h.tolist())
        sigma0 = float(ctx.sde.sigma(t0.max().cpu()))
        ctx.stats.update(forced_jump_max=max(jumps), forced_jump_mean=sum(jumps) / len(jumps),
                         forced_from_sigma_max=max(sigma0, ctx.stats.get("forced_from_sigma_max", 0.0)))  # fmt: skip
        if not ctx.memory.get("warned"):
            ctx.memory["warned"] = True
            warnings.warn(
                f"AdaptiveSDE ran out of its nfe={ctx.nfe_budget} budget: {len(h)} sample(s) took one forced step of "
                f"up to {float(h.max()):.3g} in t (from sigma={sigma0:.3g} to t={t_end:.3g}), so they may be far from "
                "the target; raise nfe or the tolerances (info.extras['forced_jump_max'])",
                ForcedStepWarning,
                stacklevel=2,
            )
