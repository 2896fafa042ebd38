"""Inception Score (Salimans et al., 2016) and its analogue for any classifier's logits.

    IS = exp( E_x KL( p(y | x) || p(y) ) ),   p(y) = E_x p(y | x),

computed on ``splits`` disjoint chunks of the samples; the mean and standard deviation over chunks are reported.
It lies in [1, K] for K classes: K when every sample is classified confidently and the classes are balanced.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from .frechet import as_numpy_2d


@dataclass(frozen=True)
class ClassifierScore:
    """Inception-Score analogue over splits.

    Attributes:
        mean: Mean of exp(E KL(p(y|x) || p(y))) over the splits.
        std: Standard deviation over the splits (0 for one split).
        num_classes: K, the largest value the score can take.
    """

    mean: float
    std: float
    num_classes: int


def classifier_score(logits, *, splits: int = 10) -> ClassifierScore:
    """The Inception-Score analogue of a classifier, from its logits on generated samples.

    Args:
        logits: Unnormalised log-probabilities, shape (N, K).
        splits: Number of disjoint chunks (each gets N // splits samples; the remainder is dropped).

    Returns:
        :class:`ClassifierScore`.
    """
    logits = as_numpy_2d(logits, "logits")
    n, k = logits.shape
    if splits < 1 or n // splits < 1:
        raise ValueError(f"splits must be in [1, N={n}], got {splits}")
    log_p = torch.from_numpy(logits).log_softmax(1).numpy()
    size = n // splits
    scores = []
    for i in range(splits):
        chunk = log_p[i * size : (i + 1) * size]
        log_marginal = np.log(np.exp(chunk).mean(0))
        kl = (np.exp(chunk) * (chunk - log_marginal)).sum(1).mean()
        scores.append(float(np.exp(kl)))
    std = float(np.std(scores, ddof=1)) if splits > 1 else 0.0
    return ClassifierScore(mean=float(np.mean(scores)), std=std, num_classes=k)
