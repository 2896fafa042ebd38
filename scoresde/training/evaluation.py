"""Test-set likelihood of a trained model beside the simple baselines, in bits/dim (discrete) or nats/dim."""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from ..likelihood.baselines import fit_baselines
from ..likelihood.ode import bits_per_dim, log_likelihood
from ..likelihood.quantization import BitsPerDim
from ..sde import SDE


@dataclass
class LikelihoodReport:
    """Per-dimension negative log-likelihoods on ``n`` test examples.

    Attributes:
        unit: ``"bits/dim"`` for discrete data (uniform dequantisation bound), ``"nats/dim"`` for continuous data.
        n: Number of test examples.
        model: The score model's value (mean, standard error) through the probability-flow ODE.
        baselines: Baseline name -> value (mean, standard error).
        nfe: Score evaluations of the ODE solve.
        wall_time: Seconds of the ODE solve.
    """

    unit: str
    n: int
    model: tuple[float, float]
    baselines: dict[str, tuple[float, float]] = field(default_factory=dict)
    nfe: int = 0
    wall_time: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def table(self) -> str:
        """A small aligned text table, model first."""
        rows = [("score model (ODE)", *self.model), *((k, *v) for k, v in self.baselines.items())]
        width = max(len(r[0]) for r in rows)
        lines = [f"test {self.unit} on {self.n} examples:"]
        lines += [f"  {name:<{width}}  {mean:8.4f} ± {se:.4f}" for name, mean, se in rows]
        return "\n".join(lines)


def _pair(b: BitsPerDim) -> tuple[float, float]:
    return (b.mean, b.stderr)


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
    **likelihood_kwargs: Any,
) -> LikelihoodReport:
    """Likelihood of ``test`` under ``model`` and under baselines fitted to ``train``.

    Args:
        sde, model: The SDE and the score model (EMA weights).
        train: Training split, for fitting the baselines, shape (N, *event_shape).
        test: The evaluated examples, shape (M, *event_shape) (on the model's device).
        levels: Number of discrete levels (bits/dim with :func:`scoresde.bits_per_dim`), or None for continuous
            data (nats/dim with :func:`scoresde.log_likelihood`).
        data_range: Model range of discrete data.
        seed: Seeds dequantisation noise and Hutchinson probes.
        **likelihood_kwargs: Passed to the likelihood function (divergence, rtol, atol, eps, ...).
    """
    device = test.device
    gen = torch.Generator(device).manual_seed(seed)
    n = test.shape[0]
    with torch.enable_grad():
        if levels is not None:
            res = bits_per_dim(
                sde, model, test, levels=levels, data_range=data_range, generator=gen, **likelihood_kwargs
            )
            value, nfe, wall = _pair(res), res.nfe, res.wall_time
        else:
            res = log_likelihood(sde, model, test, generator=gen, **likelihood_kwargs)
            per = (-res.logp / test[0].numel()).double().cpu()
            value, nfe, wall = (float(per.mean()), float(per.std() / math.sqrt(n))), res.nfe, res.wall_time
    baselines = {name: _pair(b) for name, b in fit_baselines(train, test, levels, data_range, seed=seed).items()}
    if levels is not None:
        baselines["uniform over levels"] = (math.log2(levels), 0.0)
    unit = "bits/dim" if levels is not None else "nats/dim"
    return LikelihoodReport(unit=unit, n=n, model=value, baselines=baselines, nfe=nfe, wall_time=wall)
