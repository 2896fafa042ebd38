"""Exact conditional quantities of a Gaussian mixture's components: the oracle for guided sampling.

For data x_0 ~ sum_k w_k N(mu_k, Sigma_k) with the component k as its class, the noised marginal of class k under
any linear SDE is the Gaussian N(m mu_k, m^2 Sigma_k + s^2 I) (:mod:`scoresde.oracle`), so

* the noisy classifier is exact: log p_t(k | x) = log w_k + log N_k,t(x) - log sum_j w_j N_j,t(x), and
* the conditional score is the component's score, grad log p_t(x | k) = grad log N_k,t(x).

Classifier guidance at scale 1 with :class:`ComponentPosterior`, and classifier-free guidance at w = 0 with
:class:`ComponentScore`, therefore sample exactly the requested component (tested in tests/conditioning).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._utils import batch_time
from .._validation import check_sde
from ..oracle import GaussianMixture
from ..sde import SDE


class _Components:
    """A mixture's components as classes (component k is class k), noised by ``sde``."""

    def __init__(self, mixture: GaussianMixture, sde: SDE) -> None:
        if not isinstance(mixture, GaussianMixture):
            raise TypeError(f"mixture must be a scoresde.oracle.GaussianMixture, got {type(mixture).__name__}")
        self.mixture, self.sde = mixture, check_sde(sde)
        self.num_classes = len(mixture.components)


class ComponentPosterior(_Components):
    """The exact noisy classifier ``classifier(x, t) -> log p_t(k | x)``, shape (B, K), of a mixture's components.

    Args:
        mixture: The data distribution; its component index is the class.
        sde: The forward SDE that noises it.
    """

    def __call__(self, x: Tensor, t: float | Tensor) -> Tensor:
        # the joint log w_k + log N_k,t(x) of every component (B, K), normalised in log space (no underflow)
        return self.mixture._component_logps(self.sde, x, batch_time(t, x)).log_softmax(1)


class ComponentScore(_Components):
    """The exact label-conditional score ``score_fn(x, t, y)`` of a mixture: component y's score for y < K, the
    mixture's score for the null label y = K (the networks' convention, ``num_classes`` = K).

    Args:
        mixture: The data distribution; its component index is the class.
        sde: The forward SDE that noises it.
    """

    def __call__(self, x: Tensor, t: float | Tensor, y: Tensor | None = None) -> Tensor:
        t = batch_time(t, x)
        if y is None:
            return self.mixture.score(self.sde, x, t)
        if y.shape != (x.shape[0],) or int(y.min()) < 0 or int(y.max()) > self.num_classes:
            raise ValueError(f"y must have shape ({x.shape[0]},) with labels in 0..{self.num_classes} (null)")
        out = torch.empty_like(x)
        for k, component in enumerate([*self.mixture.components, self.mixture]):
            idx = (y == k).nonzero().squeeze(1)
            if idx.numel():
                out[idx] = component.score(self.sde, x[idx], t[idx])
        return out
