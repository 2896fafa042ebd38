"""Exponential moving averages of model weights, used for sampling and evaluation.

Three profiles share one update rule theta_ema <- beta_n theta_ema + (1 - beta_n) theta and differ only in the
rate beta_n of update n:

* :class:`EMA`: a constant decay d (Song et al. 2021, app. H), with an optional (1 + n) / (10 + n) ramp;
* :class:`HalfLifeEMA`: EDM's half-life in training images with a ramp-up (Karras et al. 2022, app. F.1),
  beta = 0.5^(B / min(h, r n B)) for batch size B;
* :class:`PowerEMA`: EDM2's power-function EMA (Karras et al. 2024, eq. 127), beta_n = (1 - 1/n)^(gamma + 1), whose
  profile is a power function of training time with relative width sigma_rel. Snapshots of it taken at several
  steps reconstruct, after training, the average of any other width (:func:`posthoc_coefficients`, EDM2 alg. 3).
"""

from __future__ import annotations

import copy
import math

import numpy as np
import torch
from torch import nn


class EMA:
    """theta_ema <- d theta_ema + (1 - d) theta after every optimiser step (Song et al. 2021, app. H: d = 0.9999).

    With ``warmup=True`` the rate is d_n = min(d, (1 + n) / (10 + n)) at update n, so the average is not
    dominated by the random initial weights in short runs. Buffers (e.g. normalisation statistics) are
    copied, not averaged.

    Args:
        model: The trained module; a deep copy of it holds the averaged weights (``self.model``).
        decay: d in [0, 1); 0 makes the copy follow the model exactly.
        warmup: Use the (1 + n) / (10 + n) ramp.
    """

    def __init__(self, model: nn.Module, decay: float = 0.999, *, warmup: bool = True) -> None:
        if not 0.0 <= float(decay) < 1.0:
            raise ValueError(f"decay must lie in [0, 1), got {decay}")
        self.decay = float(decay)
        self.warmup = bool(warmup)
        self.num_updates = 0
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    def rate(self) -> float:
        """The decay d_n used by the next update."""
        if not self.warmup:
            return self.decay
        n = self.num_updates
        return min(self.decay, (1 + n) / (10 + n))

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        """Move the averaged weights towards ``model``'s (same architecture as at construction)."""
        d = self.rate()
        for avg, p in zip(self.model.parameters(), model.parameters(), strict=True):
            avg.lerp_(p.detach(), 1.0 - d)
        for avg, b in zip(self.model.buffers(), model.buffers(), strict=True):
            avg.copy_(b)
        self.num_updates += 1

    def state_dict(self) -> dict:
        """Averaged weights and the update counter (plain tensors and ints)."""
        return {"model": self.model.state_dict(), "num_updates": self.num_updates, "decay": self.decay}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.num_updates = int(state["num_updates"])


class HalfLifeEMA(EMA):
    """EDM's EMA (Karras et al. 2022, app. F.1): a half-life of h training images, ramped up as r times the images seen.

    beta_n = 0.5^(B / max(min(h, r n B), 1e-8)) at update n with batch size B: the weight of an image seen h images
    ago is half that of the newest, and early on (n B r < h) the half-life grows with training.

    Args:
        model: The trained module.
        halflife: h in training images (EDM: 500,000 for CIFAR-10), a positive number.
        rampup: r in [0, 1); 0 disables the ramp (EDM: 0.05).
        batch_size: B, the global batch size, a positive integer.
    """

    def __init__(self, model: nn.Module, halflife: float, *, rampup: float = 0.05, batch_size: int) -> None:
        if isinstance(halflife, bool) or not isinstance(halflife, (int, float)) or not 0 < halflife < math.inf:
            raise ValueError(f"ema_halflife must be a positive number of training images, got {halflife!r}")
        if isinstance(rampup, bool) or not isinstance(rampup, (int, float)) or not 0 <= rampup < 1:
            raise ValueError(f"ema_rampup must lie in [0, 1), got {rampup!r}")
        if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
            raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
        super().__init__(model, 0.0, warmup=False)
        self.halflife, self.rampup, self.batch_size = float(halflife), float(rampup), batch_size

    def rate(self) -> float:
        h = self.halflife
        if self.rampup > 0:
            h = min(h, (self.num_updates + 1) * self.batch_size * self.rampup)
        return 0.5 ** (self.batch_size / max(h, 1e-8))


def sigma_rel_to_gamma(sigma_rel: float) -> float:
    """The power-function exponent gamma of relative width sigma_rel (EDM2 eq. 126, alg. 2): the largest real root of
    gamma^3 + 7 gamma^2 + (16 - sigma_rel^-2) gamma + 12 - sigma_rel^-2."""
    t = sigma_rel**-2
    return float(np.roots([1, 7, 16 - t, 12 - t]).real.max())


def gamma_to_sigma_rel(gamma: float) -> float:
    """sigma_rel = sqrt((gamma + 1) / ((gamma + 2)^2 (gamma + 3))) (EDM2 eq. 123)."""
    return math.sqrt((gamma + 1) / (gamma + 2) ** 2 / (gamma + 3))


class PowerEMA(EMA):
    """EDM2's power-function EMA (Karras et al. 2024, eq. 127): beta_n = (1 - 1/n)^(gamma + 1) at update n (1-based).

    The average at step t weighs the weights of step tau by (gamma + 1) tau^gamma / t^(gamma + 1): a profile whose
    width relative to t is sigma_rel (EDM2 uses 0.05 and 0.10 while training, and reconstructs others afterwards).

    Args:
        model: The trained module.
        sigma_rel: Relative width in (0, 0.28) (gamma > 0 needs sigma_rel < sqrt(1/12) ~ 0.289).
    """

    def __init__(self, model: nn.Module, sigma_rel: float = 0.05) -> None:
        if isinstance(sigma_rel, bool) or not isinstance(sigma_rel, (int, float)) or not 0 < sigma_rel < 0.28:
            raise ValueError(f"ema_sigma_rel must lie in (0, 0.28), got {sigma_rel!r}")
        super().__init__(model, 0.0, warmup=False)
        self.sigma_rel = float(sigma_rel)
        self.gamma = sigma_rel_to_gamma(self.sigma_rel)

    def rate(self) -> float:
        n = self.num_updates + 1
        return (1 - 1 / n) ** (self.gamma + 1)


def _correlation(a_t: np.ndarray, a_gamma: np.ndarray, b_t: np.ndarray, b_gamma: np.ndarray) -> np.ndarray:
    """Inner products of power-function profiles (t, gamma) (EDM2 eq. 151)."""
    ratio = a_t / b_t
    exponent = np.where(a_t < b_t, b_gamma, -a_gamma)
    return (a_gamma + 1) * (b_gamma + 1) * ratio**exponent / ((a_gamma + b_gamma + 1) * np.maximum(a_t, b_t))


def posthoc_coefficients(steps: list[int], sigma_rels: list[float], step: int, sigma_rel: float) -> np.ndarray:
    """Least-squares weights that combine stored power-EMA snapshots into another profile (EDM2 alg. 3).

    Args:
        steps: The step of each stored snapshot (K,).
        sigma_rels: The sigma_rel each snapshot was tracked with (K,).
        step: The step of the wanted average (usually the last snapshot's).
        sigma_rel: Its relative width.

    Returns:
        Weights of shape (K,) summing to 1: theta(step, sigma_rel) ~ sum_k w_k theta_k.
    """
    if len(steps) != len(sigma_rels) or not steps:
        raise ValueError("steps and sigma_rels must be non-empty lists of the same length")
    a_t = np.asarray(steps, dtype=np.float64)
    a_g = np.asarray([sigma_rel_to_gamma(s) for s in sigma_rels])
    gram = _correlation(a_t[:, None], a_g[:, None], a_t[None, :], a_g[None, :])
    rhs = _correlation(a_t, a_g, np.float64(step), np.float64(sigma_rel_to_gamma(sigma_rel)))
    weights = np.linalg.lstsq(gram, rhs, rcond=None)[0]
    return weights / weights.sum()


def posthoc_average(states: list[dict], steps: list[int], sigma_rels: list[float], sigma_rel: float) -> dict:
    """A model state dict of relative width ``sigma_rel`` at the last step from stored power-EMA state dicts.

    Floating-point entries are combined with :func:`posthoc_coefficients`; others (integer buffers) are the last
    snapshot's.
    """
    weights = posthoc_coefficients(steps, sigma_rels, max(steps), sigma_rel)
    out = {}
    for key, last in states[-1].items():
        if torch.is_floating_point(last):
            out[key] = sum(float(w) * s[key].double() for w, s in zip(weights, states, strict=True)).to(last.dtype)
        else:
            out[key] = last.clone()
    return out


def make_ema(
    model: nn.Module,
    *,
    decay: float,
    warmup: bool,
    halflife: float | None = None,
    rampup: float = 0.05,
    sigma_rel: float | None = None,
    batch_size: int = 1,
) -> EMA:
    """The EMA the settings ask for: power-function (``sigma_rel``), half-life (``halflife``) or constant decay."""
    if sigma_rel is not None and halflife is not None:
        raise ValueError("set at most one of ema_sigma_rel (EDM2 power EMA) and ema_halflife (EDM half-life EMA)")
    if sigma_rel is not None:
        return PowerEMA(model, sigma_rel)
    if halflife is not None:
        return HalfLifeEMA(model, halflife, rampup=rampup, batch_size=batch_size)
    return EMA(model, decay, warmup=warmup)
