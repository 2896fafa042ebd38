"""Training objectives as small objects: ``objective(model, x0, generator) -> scalar loss``.

``model`` is a ``scoresde.models.ScoreModel`` (``model(x, t)`` is the score for ``model.sde``; ``model.net``
is the bare network). The continuous objective trains any parameterisation through the score; the discrete
DDPM / NCSN objectives train the network on integer noise levels, as in Ho et al. 2020 and Song & Ermon 2019,
so they need ``time_input="discrete"`` (the ScoreModel then maps t to the level round(t / T (N - 1)) when
sampling with the continuous SDE, as in Song et al. 2021, app. D).

Label-conditional models (a network built with ``num_classes``) are trained on ``objective(model, x0, generator,
y=labels)``; :func:`drop_labels` replaces a fraction of the labels by the null label first, so that the one network
learns both s(x, t, y) and the unconditional s(x, t, null) that classifier-free guidance combines.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .._utils import append_dims
from ..losses import ddpm_loss, dsm_loss, ncsn_loss
from ..sde import VESDE, VPSDE


def drop_labels(y: Tensor, p: float, null_label: int, generator: torch.Generator | None = None) -> Tensor:
    """Label dropout (Ho & Salimans 2021, Alg. 1): each label independently becomes ``null_label`` with probability p.

    Args:
        y: Class labels, LongTensor of shape (B,).
        p: Dropout probability in [0, 1].
        null_label: The index of the unconditional label (K for K classes).
        generator: Random generator of the draws (the trainer's, so resumed runs stay exact).

    Returns:
        The labels with the dropped ones set to ``null_label``, shape (B,).
    """
    if not 0 <= p <= 1:
        raise ValueError(f"label dropout p must lie in [0, 1], got {p}")
    if p == 0:
        return y
    u = torch.rand(y.shape, generator=generator, device=generator.device if generator is not None else y.device)
    return torch.where(u.to(y.device) < p, torch.full_like(y, null_label), y)


def _labelled(model: nn.Module, y: Tensor | None):
    """The model's score with the labels y bound (the model itself when y is None)."""
    return model if y is None else lambda x, t: model(x, t, y)


class DSMObjective:
    """Continuous denoising score matching (Song et al. 2021, eq. 7); see :func:`scoresde.dsm_loss`.

    Args:
        eps: Smallest time sampled, t ~ U(eps, T).
        weighting: ``"standard"`` (lambda = s^2) or ``"likelihood"`` (lambda = g^2).
        importance_sampling: With likelihood weighting, sample t from g^2 / s^2 (lower variance).
        reduce: ``"mean"`` or ``"sum"`` over the data dims.
    """

    def __init__(
        self, eps: float = 1e-5, weighting: str = "standard", importance_sampling: bool = False, reduce: str = "mean"
    ) -> None:
        self.eps, self.weighting, self.importance_sampling, self.reduce = eps, weighting, importance_sampling, reduce

    def __repr__(self) -> str:
        return (
            f"DSMObjective(eps={self.eps}, weighting={self.weighting!r}, "
            f"importance_sampling={self.importance_sampling}, reduce={self.reduce!r})"
        )

    def __call__(
        self, model: nn.Module, x0: Tensor, generator: torch.Generator | None = None, y: Tensor | None = None
    ) -> Tensor:
        return dsm_loss(
            model.sde,
            _labelled(model, y),
            x0,
            eps=self.eps,
            reduce=self.reduce,
            weighting=self.weighting,
            importance_sampling=self.importance_sampling,
            generator=generator,
        )


def _check_discrete(model: nn.Module, objective: str, predictions: tuple[str, ...]) -> None:
    if getattr(model, "time_input", None) != "discrete":
        raise ValueError(f"the {objective} objective trains on noise-level indices: set model.time_input=discrete")
    if model.prediction not in predictions:
        raise ValueError(f"the {objective} objective needs model.prediction in {predictions}, got {model.prediction!r}")


class DDPMObjective:
    """DDPM's L_simple (Ho et al. 2020, eq. 14) on N = ``model.num_levels`` levels of a VP SDE's discrete betas.

    The network predicts eps from (x_i, i) (``prediction="eps"``, ``time_input="discrete"``), fed exactly as
    the ScoreModel feeds it at the time t_i = i T / (N - 1) of level i.
    """

    def __call__(
        self, model: nn.Module, x0: Tensor, generator: torch.Generator | None = None, y: Tensor | None = None
    ) -> Tensor:
        if type(model.sde) is not VPSDE:
            raise ValueError(f"the DDPM objective needs sde=vp (a VPSDE), got {type(model.sde).__name__}")
        _check_discrete(model, "DDPM", ("eps",))
        betas = model.sde.discrete_betas(model.num_levels)
        return ddpm_loss(lambda x, i: _net_at_level(model, x, i, y), x0, betas, generator=generator)


def _net_at_level(model: nn.Module, x: Tensor, i: Tensor, y: Tensor | None = None) -> Tensor:
    """The raw network output at level i, with the ScoreModel's input scaling c_in(t_i), t_i = i T / (N - 1)."""
    t = i.to(x.dtype) * (model.sde.T / (model.num_levels - 1))
    x_in = append_dims(model.input_scale(t), x.ndim) * x
    return model.net(x_in, model.net_time(t)) if y is None else model.net(x_in, model.net_time(t), y)


class NCSNObjective:
    """NCSN's multi-scale DSM (Song & Ermon 2019, eq. 6) on N = ``model.num_levels`` geometric VE noise levels.

    Level i has sigma_i = ``sde.discrete_sigmas(N)[i]`` (increasing with i, so the level index grows with t as
    in the continuous VE SDE). With ``prediction="score"`` the network is the score; with ``"eps"`` the score is
    -eps / sigma_i (NCSNv2's output scaling by 1/sigma). Note that when sampling, the ScoreModel divides by the
    exact VE std s(t) = sqrt(sigma(t)^2 - sigma_min^2) instead, which differs from sigma_i at the smallest levels.
    """

    def __call__(
        self, model: nn.Module, x0: Tensor, generator: torch.Generator | None = None, y: Tensor | None = None
    ) -> Tensor:
        if not isinstance(model.sde, VESDE):
            raise ValueError(f"the NCSN objective needs sde=ve (a VESDE), got {type(model.sde).__name__}")
        _check_discrete(model, "NCSN", ("score", "eps"))
        sigmas = model.sde.discrete_sigmas(model.num_levels).to(x0.dtype)

        def score(x: Tensor, i: Tensor) -> Tensor:
            out = _net_at_level(model, x, i, y)
            if model.prediction == "score":
                return out
            return -out / append_dims(sigmas.to(x.device)[i], x.ndim)

        return ncsn_loss(score, x0, sigmas, generator=generator)


OBJECTIVES = {"dsm": DSMObjective, "ddpm": DDPMObjective, "ncsn": NCSNObjective}
"""Objective classes by name (the ``train.objective`` configs ``_target_`` them)."""
