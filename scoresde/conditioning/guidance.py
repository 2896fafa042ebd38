"""Guided scores for class-conditional sampling: classifier guidance and classifier-free guidance.

Both turn a score into the score of a conditional (or sharpened) distribution, so every sampler of the library
draws conditional samples without knowing it (``scoresde.sample(sde, guided, shape, ...)``).

Classifier guidance (Song et al. 2021, sec. 5 and app. I.1; Dhariwal & Nichol 2021, eq. 10): by Bayes' rule
p_t(x | y) is proportional to p_t(x) p_t(y | x), so

    grad_x log p_t(x | y) = grad_x log p_t(x) + grad_x log p_t(y | x),

and with a guidance scale w the sampler follows s(x, t) + w grad_x log p_t(y | x) (w = 1: the exact conditional
when the classifier is the exact noisy posterior p_t(y | x_t)).

Classifier-free guidance (Ho & Salimans 2021, eq. 6): one network s(x, t, y) trained with some labels replaced by a
null label gives both the conditional and the unconditional score, and

    s_w(x, t, y) = (1 + w) s(x, t, y) - w s(x, t, null),

the score of p_t(x | y)^(1 + w) / p_t(x)^w at each t (w = 0: the conditional score itself).
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable

import torch
from torch import Tensor

from .._utils import batch_time
from .._validation import check_callable, check_int
from ..sde import ScoreFn

Classifier = Callable[[Tensor, Tensor], Tensor]
"""``classifier(x, t) -> (B, C)`` logits or log-probabilities of the C classes given x_t, t of shape (B,)."""

ConditionalScoreFn = Callable[[Tensor, Tensor, Tensor], Tensor]
"""``score_fn(x, t, y)``: the score of p_t(x | y), y a LongTensor of shape (B,); the null label gives p_t(x)."""


def _check_scale(scale: float) -> float:
    if isinstance(scale, bool) or not isinstance(scale, numbers.Real):
        raise TypeError(f"scale must be a real number, got {scale!r}")
    if not math.isfinite(float(scale)):
        raise ValueError(f"scale must be finite, got {scale}")
    return float(scale)


def _check_labels(y: Tensor | int) -> Tensor | int:
    if isinstance(y, bool):
        raise TypeError("y must be an int or a LongTensor of shape (B,), got a bool")
    if isinstance(y, int):
        if y < 0:
            raise ValueError(f"y must be a non-negative class index, got {y}")
        return y
    if not isinstance(y, Tensor) or y.ndim != 1 or y.dtype not in (torch.int64, torch.int32):
        shape = tuple(y.shape) if isinstance(y, Tensor) else type(y).__name__
        raise TypeError(f"y must be an int or an integer tensor of shape (B,), got {shape}")
    if y.numel() and int(y.min()) < 0:
        raise ValueError("y must hold non-negative class indices")
    return y.long()


def _batch_labels(y: Tensor | int, x: Tensor) -> Tensor:
    """The labels as a (B,) LongTensor on x's device; an int is repeated for the whole batch."""
    if isinstance(y, int):
        return torch.full((x.shape[0],), y, dtype=torch.long, device=x.device)
    if y.shape[0] != x.shape[0]:
        raise ValueError(f"y has {y.shape[0]} labels but x has a batch of {x.shape[0]} (shape {tuple(x.shape)})")
    return y.to(x.device)


class ClassifierGuidance:
    """The guided score s(x, t) + w grad_x log p_t(y | x) (Song et al. 2021, eq. 48; Dhariwal & Nichol 2021).

    The gradient is taken by autograd through the classifier, with gradients enabled locally, so the guided
    score works inside the samplers' ``torch.no_grad``. The classifier's output is normalised with
    ``log_softmax`` over classes, so logits and log-probabilities both work. The guidance term is computed on a
    detached copy of x, so the guided score carries no gradient through it: fine for sampling, not for
    ``log_likelihood`` (whose divergence would miss the classifier's Hessian).

    Args:
        score_fn: The unconditional score ``score_fn(x, t)``.
        classifier: ``classifier(x, t) -> (B, C)`` logits or log-probabilities of the noisy data's class.
        y: Requested classes: an int for the whole batch, or a LongTensor of shape (B,).
        scale: Guidance scale w; 1 samples p(x | y) when the classifier is the exact p_t(y | x_t).
    """

    def __init__(self, score_fn: ScoreFn, classifier: Classifier, y: Tensor | int, scale: float = 1.0) -> None:
        self.score_fn, self.classifier = check_callable("score_fn", score_fn), check_callable("classifier", classifier)
        self.y, self.scale = _check_labels(y), _check_scale(scale)

    def __repr__(self) -> str:
        y = self.y if isinstance(self.y, int) else f"<{self.y.numel()} labels>"
        return f"ClassifierGuidance(y={y}, scale={self.scale})"

    def log_likelihood_grad(self, x: Tensor, t: float | Tensor) -> Tensor:
        """grad_x log p_t(y | x), shape of x."""
        t, y = batch_time(t, x), _batch_labels(self.y, x)
        with torch.enable_grad():
            x_in = x.detach().requires_grad_(True)
            logits = self.classifier(x_in, t.detach())
            if logits.ndim != 2 or logits.shape[0] != x.shape[0]:
                raise ValueError(f"classifier must return (B, C) = ({x.shape[0]}, C), got {tuple(logits.shape)}")
            if int(y.max()) >= logits.shape[1]:
                raise ValueError(f"y holds class {int(y.max())} but the classifier has {logits.shape[1]} classes")
            log_p = logits.log_softmax(1).gather(1, y[:, None]).sum()
            (grad,) = torch.autograd.grad(log_p, x_in)
        return grad.to(x.dtype)

    def __call__(self, x: Tensor, t: float | Tensor) -> Tensor:
        """The guided score, shape of x."""
        score = self.score_fn(x, t)
        if self.scale == 0:
            return score
        return score + self.scale * self.log_likelihood_grad(x, t)


class ClassifierFreeGuidance:
    """The guided score (1 + w) s(x, t, y) - w s(x, t, null) (Ho & Salimans 2021, eq. 6).

    Both scores come from one call on the batch stacked twice (labels y, then the null label); at w = 0 only the
    conditional score is evaluated. ``info.nfe`` of a sampler counts one per guided call.

    Args:
        score_fn: A label-conditional score ``score_fn(x, t, y)`` (e.g. a ``ScoreModel`` of a network built with
            ``num_classes``), which gives the unconditional score for the null label.
        y: Requested classes: an int for the whole batch, or a LongTensor of shape (B,).
        scale: Guidance weight w >= -1; 0 is the conditional score, larger w sharpens towards the class.
        null_label: The label index of the unconditional score; default ``score_fn.num_classes`` (the networks'
            convention: classes 0..K-1, null K).
    """

    def __init__(
        self, score_fn: ConditionalScoreFn, y: Tensor | int, scale: float, *, null_label: int | None = None
    ) -> None:
        check_callable("score_fn", score_fn)
        if null_label is None:
            null_label = getattr(score_fn, "num_classes", None)
            if null_label is None:
                raise ValueError(
                    "score_fn has no num_classes attribute (is it label-conditional?): pass null_label= explicitly"
                )
        check_int("null_label", null_label, 0)
        self.score_fn, self.y, self.scale, self.null_label = score_fn, _check_labels(y), _check_scale(scale), null_label
        if self.scale < -1:
            raise ValueError(f"scale must be >= -1 (w = -1 is the unconditional score), got {self.scale}")
        if isinstance(self.y, int) and self.y == null_label:
            raise ValueError(f"y is the null label {null_label}; request a class 0..{null_label - 1}")

    def __repr__(self) -> str:
        y = self.y if isinstance(self.y, int) else f"<{self.y.numel()} labels>"
        return f"ClassifierFreeGuidance(y={y}, scale={self.scale}, null_label={self.null_label})"

    def __call__(self, x: Tensor, t: float | Tensor) -> Tensor:
        """The guided score, shape of x."""
        t, y = batch_time(t, x), _batch_labels(self.y, x)
        if self.scale == 0:
            return self.score_fn(x, t, y)
        null = torch.full_like(y, self.null_label)
        cond, uncond = self.score_fn(torch.cat([x, x]), torch.cat([t, t]), torch.cat([y, null])).chunk(2)
        return (1 + self.scale) * cond - self.scale * uncond


def classifier_guidance(score_fn: ScoreFn, classifier: Classifier, y: Tensor | int, scale: float = 1.0) -> ScoreFn:
    """The classifier-guided score ``score_fn(x, t) + scale * grad_x log p_t(y | x)``; see :class:`ClassifierGuidance`.

    Example::

        guided = scoresde.classifier_guidance(ckpt.score_fn, noisy_classifier, y=3, scale=2.0)
        x, info = scoresde.sample(ckpt.sde, guided, (16, 1, 8, 8), solver="ancestral", steps=500)
    """
    return ClassifierGuidance(score_fn, classifier, y, scale)


def classifier_free_guidance(
    score_fn: ConditionalScoreFn, y: Tensor | int, scale: float, *, null_label: int | None = None
) -> ScoreFn:
    """The score (1 + scale) s(x, t, y) - scale s(x, t, null); see :class:`ClassifierFreeGuidance`.

    Example::

        guided = scoresde.classifier_free_guidance(ckpt.score_fn, y=torch.arange(10).repeat(8), scale=1.0)
        x, info = scoresde.sample(ckpt.sde, guided, (80, 1, 8, 8), solver="ancestral", steps=500)
    """
    return ClassifierFreeGuidance(score_fn, y, scale, null_label=null_label)
