"""Test-set likelihood of a trained model beside the simple baselines, in bits/dim (discrete) or nats/dim.

The verdict is a paired one: on the same test points, d_i = model_i - baseline_i, where model_i is the mean of
``draws`` independent estimates (dequantisation noise and Hutchinson probes drawn afresh for every example and
draw). The standard error of mean(d) = std(d) / sqrt(n) then holds both the spread between examples and the
estimator's own noise (each d_i carries its draws' error, independent across examples); the report also gives the
estimator's share, sqrt(mean_i var_k(model_ik) / draws) / sqrt(n), measured from the spread between draws. The
model beats a baseline when mean(d) < -3 standard errors.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from .._validation import check_int
from ..likelihood.baselines import fit_baselines
from ..likelihood.ode import bits_per_dim, log_likelihood
from ..sde import SDE

Z_VERDICT = 3.0
"""Standard errors by which the model must beat the reference baseline."""


@dataclass
class PairedDifference:
    """mean(model_i - baseline_i) over the test points, with its standard error.

    Attributes:
        baseline: The baseline's name.
        mean: The mean paired difference (negative: the model is better).
        stderr: std(d) / sqrt(n), estimator noise included.
        estimator_stderr: The estimator's share of ``stderr`` (from the spread between draws; NaN for one draw).
        z: mean / stderr.
        beats: Whether mean < -3 stderr.
    """

    baseline: str
    mean: float
    stderr: float
    estimator_stderr: float
    z: float
    beats: bool


@dataclass
class LikelihoodReport:
    """Per-dimension negative log-likelihoods on ``n`` test examples.

    Attributes:
        unit: ``"bits/dim"`` for discrete data (uniform dequantisation bound), ``"nats/dim"`` for continuous data.
        n: Number of test examples.
        model: The score model's value (mean, standard error) through the probability-flow ODE.
        baselines: Baseline name -> value (mean, standard error).
        nfe: Score evaluations of the ODE solves.
        wall_time: Seconds of the ODE solves.
        draws: Independent estimates averaged per example.
        paired: The paired difference model - baseline for every baseline with per-example values.
        reference: The baseline of the verdict (per-pixel categorical for discrete data, the Gaussian otherwise).
    """

    unit: str
    n: int
    model: tuple[float, float]
    baselines: dict[str, tuple[float, float]] = field(default_factory=dict)
    nfe: int = 0
    wall_time: float = 0.0
    draws: int = 1
    paired: dict[str, PairedDifference] = field(default_factory=dict)
    reference: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @property
    def verdict(self) -> str:
        """One line: whether the model beats the reference baseline at 3 standard errors of the paired difference."""
        if self.reference is None or self.reference not in self.paired:
            return "no paired baseline"
        p = self.paired[self.reference]
        word = "beats" if p.beats else "does NOT beat"
        return (f"model {word} {p.baseline} at {Z_VERDICT:g} s.e.: difference {p.mean:+.4f} ± {p.stderr:.4f} "
                f"{self.unit} (z = {p.z:+.1f}; paired over {self.n} examples x {self.draws} draws, estimator "
                f"noise ± {p.estimator_stderr:.4f} included)")  # fmt: skip

    def table(self) -> str:
        """A small aligned text table, model first, then the verdict."""
        rows = [("score model (ODE)", *self.model), *((k, *v) for k, v in self.baselines.items())]
        width = max(len(r[0]) for r in rows)
        lines = [f"test {self.unit} on {self.n} examples:"]
        lines += [f"  {name:<{width}}  {mean:8.4f} ± {se:.4f}" for name, mean, se in rows]
        lines.append("  (± : spread between examples / sqrt(n))")
        lines.append(self.verdict)
        return "\n".join(lines)


def paired_difference(model: Tensor, baseline: Tensor, name: str) -> PairedDifference:
    """The paired difference of per-example values.

    Args:
        model: The model's per-example estimates, shape (draws, n).
        baseline: The baseline's per-example values, shape (n,).
        name: The baseline's name.
    """
    draws, n = model.shape
    d = model.double().mean(0) - baseline.double().cpu()
    mean = float(d.mean())
    se = float(d.std() / math.sqrt(n)) if n > 1 else math.nan
    est = float((model.double().var(0).mean() / draws).sqrt() / math.sqrt(n)) if draws > 1 else math.nan
    z = mean / se if se and se > 0 else math.nan
    return PairedDifference(name, mean, se, est, z, bool(mean < -Z_VERDICT * se))


@torch.no_grad()
def evaluate_likelihood(
    sde: SDE,
    model: nn.Module,
    train: torch.Tensor,
    test: torch.Tensor,
    *,
    levels: int | None,
    data_range: tuple[float, float] = (-1.0, 1.0),
    seed: int = 0,
    draws: int = 1,
    centred_bins: bool = False,
    **likelihood_kwargs: Any,
) -> LikelihoodReport:
    """Likelihood of ``test`` under ``model`` and under baselines fitted to ``train``, with a paired verdict.

    Args:
        sde, model: The SDE and the score model (EMA weights).
        train: Training split, for fitting the baselines, shape (N, *event_shape).
        test: The evaluated examples, shape (M, *event_shape) (on the model's device).
        levels: Number of discrete levels (bits/dim with :func:`scoresde.bits_per_dim`), or None for continuous
            data (nats/dim with :func:`scoresde.log_likelihood`).
        data_range: Model range of discrete data.
        seed: Seeds dequantisation noise and Hutchinson probes.
        draws: Independent estimates per example (fresh dequantisation noise and probes), averaged; >= 2 measures
            the estimator's noise. Continuous data with the exact divergence use one (the estimate is deterministic).
        centred_bins: Dequantisation bins centred on the stored values (for a model trained on
            :class:`scoresde.data.UniformDequantization` draws) instead of the K bins tiling the range.
        **likelihood_kwargs: Passed to the likelihood function (divergence, rtol, atol, eps, ...).
    """
    check_int("draws", draws)
    if levels is None and likelihood_kwargs.get("divergence", "exact") == "exact":
        draws = 1  # continuous data with the exact trace: the estimate is deterministic, one draw is exact
    gen = torch.Generator(test.device).manual_seed(seed)
    n, estimates, nfe, wall = test.shape[0], [], 0, 0.0
    with torch.enable_grad():
        for _ in range(draws):
            if levels is not None:
                res = bits_per_dim(sde, model, test, levels=levels, data_range=data_range, generator=gen,
                                   centred_bins=centred_bins, **likelihood_kwargs)  # fmt: skip
                per = res.per_sample.detach().double().cpu()
            else:
                res = log_likelihood(sde, model, test, generator=gen, **likelihood_kwargs)
                per = (-res.logp / test[0].numel()).detach().double().cpu()
            estimates.append(per)
            nfe, wall = nfe + res.nfe, wall + res.wall_time
    per_draw = torch.stack(estimates)  # (draws, n)
    per = per_draw.mean(0)
    value = (float(per.mean()), float(per.std() / math.sqrt(n)) if n > 1 else math.nan)
    fitted = fit_baselines(train, test, levels, data_range, seed=seed, centred_bins=centred_bins)
    baselines = {name: (b.mean, b.stderr) for name, b in fitted.items()}
    paired = {name: paired_difference(per_draw, b.per_sample, name) for name, b in fitted.items()}
    if levels is not None:
        baselines["uniform over levels"] = (math.log2(levels), 0.0)
    unit = "bits/dim" if levels is not None else "nats/dim"
    reference = "per-pixel categorical" if levels is not None else "gaussian (full covariance)"
    return LikelihoodReport(unit=unit, n=n, model=value, baselines=baselines, nfe=nfe, wall_time=wall, draws=draws,
                            paired=paired, reference=reference)  # fmt: skip
