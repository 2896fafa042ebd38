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

import math

import torch
from torch import Tensor, nn

from .._utils import append_dims
from ..losses import check_dsm_options, ddpm_loss, dsm_loss_per_sample, ncsn_loss
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


def labelled(fn, y: Tensor | None):
    """``fn(x, t)`` with the labels y bound (fn itself when y is None)."""
    return fn if y is None else (lambda x, t: fn(x, t, y))


class LogVarianceHead(nn.Module):
    """EDM2's learned per-noise-level uncertainty u(sigma) (Karras et al. 2024, sec. 5.1 and app. B.2).

    u(sigma) = w . sqrt(2) cos(2 pi (f c_noise + phi)), c_noise = ln(sigma) / 4, with fixed random frequencies
    f ~ N(0, 1) and phases phi ~ U(0, 1) (buffers) and a trained linear read-out w initialised to zero (u = 0
    at the start).

    Args:
        channels: Number of Fourier features.
        seed: Seeds the fixed frequencies and phases.
    """

    def __init__(self, channels: int = 128, seed: int = 0) -> None:
        super().__init__()
        gen = torch.Generator().manual_seed(seed)
        self.register_buffer("freqs", torch.randn(channels, generator=gen))
        self.register_buffer("phases", torch.rand(channels, generator=gen))
        self.linear = nn.Linear(channels, 1, bias=False)
        nn.init.zeros_(self.linear.weight)

    def forward(self, sigma: Tensor) -> Tensor:
        """sigma: (B,) -> u(sigma): (B,)."""
        c_noise = (sigma.log() / 4).to(self.freqs.dtype)
        features = math.sqrt(2) * torch.cos(2 * math.pi * (c_noise[:, None] * self.freqs + self.phases))
        return self.linear(features).squeeze(1)


class DSMObjective(nn.Module):
    """Continuous denoising score matching (Song et al. 2021, eq. 7) with a choice of noise levels and weighting.

    See :func:`scoresde.dsm_loss`. Which to pick (docs/guides/training.md): ``noise="lognormal"`` with
    ``weighting="edm"`` (EDM, Karras et al. 2022) trains the denoiser where it matters for sampling;
    ``uncertainty=True`` adds EDM2's learned weighting (Karras et al. 2024, eq. 21),
    L / exp(u(sigma)) + u(sigma), which balances the noise levels by their own loss; ``weighting="likelihood"``
    with ``importance_sampling`` (Song, Durkan, Murray & Ermon 2021) targets the likelihood bound.

    Args:
        eps: Smallest time sampled.
        weighting: ``"standard"`` (lambda = s^2), ``"likelihood"`` (lambda = g^2) or ``"edm"`` (1 / c_out^2).
        importance_sampling: With likelihood weighting, sample t from g^2 / s^2 (lower variance).
        reduce: ``"mean"`` or ``"sum"`` over the data dims.
        noise: ``"uniform"`` t ~ U(eps, T), or ``"lognormal"`` ln sigma ~ N(p_mean, p_std^2).
        p_mean, p_std: EDM's log-normal parameters.
        uncertainty: Learn EDM2's per-noise-level log-variance u(sigma) (a :class:`LogVarianceHead`, trained with
            the model and kept in checkpoints under ``objective``).
        sigma_data: For ``weighting="edm"``: the data's standard deviation; None takes the model's
            (``model.sigma_data``, measured from the data) or, for a model without one, 1.
    """

    def __init__(
        self,
        eps: float = 1e-5,
        weighting: str = "standard",
        importance_sampling: bool = False,
        reduce: str = "mean",
        noise: str = "uniform",
        p_mean: float = -1.2,
        p_std: float = 1.2,
        uncertainty: bool = False,
        sigma_data: float | None = None,
    ) -> None:
        super().__init__()
        if not isinstance(uncertainty, bool):
            raise ValueError(f"uncertainty must be true or false, got {uncertainty!r}")
        check_dsm_options(weighting=weighting, importance_sampling=importance_sampling, reduce=reduce, noise=noise,
                          p_mean=p_mean, p_std=p_std, sigma_data=1.0 if sigma_data is None else sigma_data)  # fmt: skip
        if isinstance(eps, bool) or not isinstance(eps, (int, float)) or not eps > 0:
            raise ValueError(f"eps must be a positive number below the SDE's T, got {eps!r}")
        self.eps, self.weighting, self.importance_sampling, self.reduce = eps, weighting, importance_sampling, reduce
        self.noise, self.p_mean, self.p_std, self.sigma_data = noise, p_mean, p_std, sigma_data
        self.logvar = LogVarianceHead() if uncertainty else None

    def __repr__(self) -> str:
        return (
            f"DSMObjective(eps={self.eps}, weighting={self.weighting!r}, "
            f"importance_sampling={self.importance_sampling}, reduce={self.reduce!r}, noise={self.noise!r}, "
            f"p_mean={self.p_mean}, p_std={self.p_std}, uncertainty={self.logvar is not None})"
        )

    def _sigma_data(self, model: nn.Module) -> float | None:
        if self.weighting != "edm":
            return None
        if self.sigma_data is not None:
            return self.sigma_data
        own = getattr(model, "sigma_data", None)
        return float(own) if own is not None else 1.0

    def forward(
        self, model: nn.Module, x0: Tensor, generator: torch.Generator | None = None, y: Tensor | None = None
    ) -> Tensor:
        loss, t = dsm_loss_per_sample(
            model.sde,
            labelled(model, y),
            x0,
            eps=self.eps,
            reduce=self.reduce,
            weighting=self.weighting,
            importance_sampling=self.importance_sampling,
            generator=generator,
            noise=self.noise,
            p_mean=self.p_mean,
            p_std=self.p_std,
            sigma_data=self._sigma_data(model),
            return_time=True,
        )
        if self.logvar is not None:
            u = self.logvar(model.sde.sigma(t)).to(loss.dtype)
            loss = loss / u.exp() + u
        return loss.mean()


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
