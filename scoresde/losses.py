"""Training objectives: continuous denoising score matching and the discrete DDPM / NCSN objectives.

Continuous DSM (Song et al. 2021, eq. 7): with t ~ U(eps, T), x_t = m(t) x_0 + s(t) z,

    L(theta) = E_t E_{x_0, z} [ lambda(t) || s_theta(x_t, t) + z / s(t) ||^2 ]

since the kernel's score is -z / s(t). ``weighting="standard"`` takes lambda(t) = s(t)^2, so the
summand is || s(t) s_theta + z ||^2; ``weighting="likelihood"`` takes lambda(t) = g(t)^2, which makes the
loss an upper bound on the negative log-likelihood (Song, Durkan, Murray & Ermon 2021, Thm. 1).

EDM's recipe (Karras et al. 2022, sec. 5) goes through the change of variables sigma = s(t) / m(t): the denoiser
D = (x_t + s^2 s_theta) / m estimates x_0 with error D - x_0 = sigma (s s_theta + z), so EDM's loss
lambda(sigma) || D - x_0 ||^2 with lambda = 1 / c_out^2 = (sigma^2 + sigma_data^2) / (sigma sigma_data)^2 is
(sigma^2 + sigma_data^2) / sigma_data^2 || s s_theta + z ||^2 (``weighting="edm"``), and its log-normal noise
levels ln sigma ~ N(P_mean, P_std^2) become t = sigma^{-1}(sigma) of the SDE at hand (``noise="lognormal"``).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ._utils import append_dims, check_finite
from ._validation import check_choice, check_positive, is_real
from .sde import SDE, ScoreFn

_WEIGHTINGS = ("standard", "likelihood", "edm")
_NOISES = ("uniform", "lognormal")
_REDUCTIONS = ("mean", "sum")


def _reduce_dims(v: Tensor, reduce: str) -> Tensor:
    v = v.reshape(v.shape[0], -1)
    return v.mean(1) if reduce == "mean" else v.sum(1)


def _check_data(x0: Tensor) -> None:
    if not isinstance(x0, Tensor) or x0.ndim < 2 or x0.shape[0] == 0:
        shape = tuple(x0.shape) if isinstance(x0, Tensor) else type(x0).__name__
        raise ValueError(f"x0 must be a tensor of shape (B, *event_shape) with B >= 1, got {shape}")
    check_finite(x0, "x0")


def sample_time_uniform(
    sde: SDE, batch: int, *, eps: float, generator: torch.Generator | None = None, like: Tensor
) -> Tensor:
    """t ~ U(eps, T), shape (batch,)."""
    u = torch.rand(batch, generator=generator, dtype=like.dtype, device=like.device)
    return eps + (sde.T - eps) * u


def sample_time_importance(
    sde: SDE, batch: int, *, eps: float, generator: torch.Generator | None = None, like: Tensor
) -> tuple[Tensor, Tensor]:
    """Draw t from p(t) proportional to g(t)^2 / s(t)^2 on [eps, T] and return (t, Z / (T - eps)).

    For a linear SDE g^2 = d(s^2)/dt - 2 f s^2, so g^2 / s^2 = d/dt log sigma(t)^2 with sigma = s / m:
    the proposal is uniform in log sigma^2 (i.e. in log-SNR), with normaliser
    Z = log sigma(T)^2 - log sigma(eps)^2. Then E_{U(eps,T)}[g^2/s^2 h(t)] = Z/(T - eps) E_p[h(t)]
    (Song, Durkan, Murray & Ermon 2021, sec. 5). Computed in float64, returned in ``like``'s dtype.
    """
    lo = 2 * torch.log(sde.sigma(torch.tensor(eps, dtype=torch.float64)))
    hi = 2 * torch.log(sde.sigma(torch.tensor(sde.T, dtype=torch.float64)))
    u = torch.rand(batch, generator=generator, dtype=torch.float64, device=like.device)
    log_sigma2 = lo.to(like.device) + u * (hi - lo).to(like.device)
    t = sde.t_from_sigma(torch.exp(0.5 * log_sigma2)).clamp(eps, sde.T)
    weight = float(hi - lo) / (sde.T - eps)
    return t.to(like.dtype), torch.full((batch,), weight, dtype=like.dtype, device=like.device)


def sample_time_lognormal(
    sde: SDE,
    batch: int,
    *,
    eps: float,
    p_mean: float = -1.2,
    p_std: float = 1.2,
    generator: torch.Generator | None = None,
    like: Tensor,
) -> Tensor:
    """EDM's noise levels ln sigma ~ N(P_mean, P_std^2) (Karras et al. 2022, table 1) as times of ``sde``: (batch,).

    sigma is clipped to the SDE's range [sigma(eps), sigma(T)] and mapped to t = sigma^{-1}(sigma); computed in
    float64, returned in ``like``'s dtype.
    """
    lo = sde.sigma(torch.tensor(eps, dtype=torch.float64))
    hi = sde.sigma(torch.tensor(sde.T, dtype=torch.float64))
    n = torch.randn(batch, generator=generator, dtype=torch.float64, device=like.device)
    sigma = torch.exp(p_mean + p_std * n).clamp(float(lo), float(hi))
    return sde.t_from_sigma(sigma).clamp(eps, sde.T).to(like.dtype)


def check_dsm_options(
    *,
    weighting: str = "standard",
    importance_sampling: bool = False,
    reduce: str = "mean",
    noise: str = "uniform",
    p_mean: float = -1.2,
    p_std: float = 1.2,
    sigma_data: float | None = None,
) -> None:
    """Raise ValueError naming the first bad setting of :func:`dsm_loss` (every one but eps, which needs the SDE)."""
    check_choice("reduce", reduce, _REDUCTIONS)
    check_choice("weighting", weighting, _WEIGHTINGS)
    check_choice("noise", noise, _NOISES)
    if not isinstance(importance_sampling, bool):
        raise ValueError(f"importance_sampling must be true or false, got {importance_sampling!r}")
    if importance_sampling and (weighting != "likelihood" or noise != "uniform"):
        raise ValueError("importance_sampling=True is for weighting='likelihood' with noise='uniform' (it samples t "
                         "from g^2/s^2 in place of U(eps, T))")  # fmt: skip
    if weighting == "edm":
        if sigma_data is None:
            raise ValueError("weighting='edm' needs sigma_data (the data's standard deviation)")
        check_positive("sigma_data", sigma_data)
    if noise == "lognormal":
        if not (is_real(p_mean) and math.isfinite(p_mean)):
            raise ValueError(f"p_mean must be a finite number, got {p_mean!r}")
        check_positive("p_std", p_std)


def dsm_loss_per_sample(
    sde: SDE,
    score_fn: ScoreFn,
    x0: Tensor,
    *,
    eps: float = 1e-5,
    reduce: str = "mean",
    weighting: str = "standard",
    importance_sampling: bool = False,
    generator: torch.Generator | None = None,
    noise: str = "uniform",
    p_mean: float = -1.2,
    p_std: float = 1.2,
    sigma_data: float | None = None,
    return_time: bool = False,
) -> Tensor | tuple[Tensor, Tensor]:
    """Per-sample continuous DSM loss, shape (B,); see :func:`dsm_loss` for the arguments.

    With ``return_time`` it returns (loss, t), t of shape (B,) the sampled times.
    """
    _check_data(x0)
    check_dsm_options(weighting=weighting, importance_sampling=importance_sampling, reduce=reduce, noise=noise,
                      p_mean=p_mean, p_std=p_std, sigma_data=sigma_data)  # fmt: skip
    if not 0 < eps < sde.T:
        raise ValueError(f"eps must lie in (0, T={sde.T}), got {eps}")
    batch = x0.shape[0]
    if importance_sampling:
        t, weight = sample_time_importance(sde, batch, eps=eps, generator=generator, like=x0)
    elif noise == "lognormal":
        t = sample_time_lognormal(sde, batch, eps=eps, p_mean=p_mean, p_std=p_std, generator=generator, like=x0)
    else:
        t = sample_time_uniform(sde, batch, eps=eps, generator=generator, like=x0)
    z = torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)
    x_t = sde.perturb(x0, t, z)
    score = score_fn(x_t, t)
    _check_output("score_fn", score, x0)
    std = sde.std(t)
    # lambda(t) ||score + z/s||^2 written as w(t) ||s score + z||^2 with w = lambda / s^2
    residual = _reduce_dims((append_dims(std, x0.ndim) * score + z) ** 2, reduce)
    if weighting == "standard":
        loss = residual
    elif weighting == "edm":  # lambda = 1 / c_out^2 on ||D - x_0||^2 = sigma^2 ||s score + z||^2
        loss = (1 + (std / sde.mean_scale(t)) ** 2 / sigma_data**2) * residual
    elif importance_sampling:
        loss = weight * residual
    else:
        loss = sde.g2(t) / std**2 * residual
    return (loss, t) if return_time else loss


def dsm_loss(
    sde: SDE,
    score_fn: ScoreFn,
    x0: Tensor,
    *,
    eps: float = 1e-5,
    reduce: str = "mean",
    weighting: str = "standard",
    importance_sampling: bool = False,
    generator: torch.Generator | None = None,
    noise: str = "uniform",
    p_mean: float = -1.2,
    p_std: float = 1.2,
    sigma_data: float | None = None,
) -> Tensor:
    """Continuous denoising score-matching loss (Song et al. 2021, eq. 7), averaged over the batch.

    Args:
        sde: The forward SDE.
        score_fn: Model score ``score_fn(x, t)``, x of shape (B, ...) and t of shape (B,).
        x0: Clean data, shape (B, *event_shape).
        eps: Smallest time sampled; t ~ U(eps, T).
        reduce: ``"mean"`` or ``"sum"`` of the squared error over the data dims.
        weighting: ``"standard"`` (lambda = s^2), ``"likelihood"`` (lambda = g^2) or ``"edm"`` (EDM's
            lambda = 1 / c_out^2 on the denoiser error; needs ``sigma_data``).
        importance_sampling: With likelihood weighting, draw t from p(t) ~ g^2 / s^2 and reweight,
            which has the same expectation and a far lower variance.
        generator: Random generator for t and z.
        noise: ``"uniform"`` (t ~ U(eps, T), the paper's) or ``"lognormal"`` (EDM's ln sigma ~ N(p_mean, p_std^2),
            t = sigma^{-1}(sigma), clipped to [eps, T]).
        p_mean, p_std: The log-normal's parameters (EDM: -1.2, 1.2).
        sigma_data: The data's standard deviation, for ``weighting="edm"``.

    Returns:
        A scalar tensor.
    """
    return dsm_loss_per_sample(
        sde, score_fn, x0, eps=eps, reduce=reduce, weighting=weighting, importance_sampling=importance_sampling,
        generator=generator, noise=noise, p_mean=p_mean, p_std=p_std, sigma_data=sigma_data,
    ).mean()  # fmt: skip


IndexModel = Callable[[Tensor, Tensor], Tensor]
"""A discrete-time network ``model(x, i)`` with i a LongTensor of noise-level indices, shape (B,)."""


def _check_schedule(name: str, values: Tensor, lo: float, hi: float | None) -> Tensor:
    if not isinstance(values, Tensor) or values.ndim != 1 or values.numel() < 1:
        raise ValueError(f"{name} must be a 1-D tensor with at least one entry")
    too_high = hi is not None and bool((values >= hi).any())
    if not bool(torch.isfinite(values).all()) or bool((values <= lo).any()) or too_high:
        raise ValueError(f"every entry of {name} must lie in ({lo}, {'inf' if hi is None else hi})")
    return values


def _level_draws(x0: Tensor, levels: int, reduce: str, generator: torch.Generator | None) -> tuple[Tensor, Tensor]:
    """Checks shared by the discrete objectives, then the level indices i (B,) and the noise z (B, ...)."""
    _check_data(x0)
    check_choice("reduce", reduce, _REDUCTIONS)
    i = torch.randint(0, levels, (x0.shape[0],), generator=generator, device=x0.device)
    return i, torch.randn(x0.shape, generator=generator, dtype=x0.dtype, device=x0.device)


def _check_output(model_name: str, out: Tensor, x0: Tensor) -> None:
    if out.shape != x0.shape:
        raise ValueError(f"{model_name} returned shape {tuple(out.shape)} for input of shape {tuple(x0.shape)}")


def ddpm_loss(
    eps_model: IndexModel,
    x0: Tensor,
    betas: Tensor,
    *,
    reduce: str = "mean",
    generator: torch.Generator | None = None,
) -> Tensor:
    """DDPM's L_simple (Ho et al. 2020, eq. 14).

    E_{i, x_0, z} || z - eps_theta(sqrt(abar_i) x_0 + sqrt(1 - abar_i) z, i) ||^2, abar_i = prod_{j<=i} (1 - beta_j).

    Args:
        eps_model: Noise predictor ``eps_model(x_i, i)``, i of shape (B,) with values in [0, N).
        x0: Clean data, shape (B, ...).
        betas: The discrete schedule beta_0..beta_{N-1} (e.g. ``VPSDE().discrete_betas(1000)``).
        reduce: ``"mean"`` or ``"sum"`` over the data dims.
    """
    betas = _check_schedule("betas", betas, 0.0, 1.0)
    i, z = _level_draws(x0, betas.numel(), reduce, generator)
    alphas_bar = torch.cumprod(1 - betas.to(torch.float64), 0).to(dtype=x0.dtype, device=x0.device)
    a = append_dims(alphas_bar[i], x0.ndim)
    pred = eps_model(a.sqrt() * x0 + (1 - a).sqrt() * z, i)
    _check_output("eps_model", pred, x0)
    return _reduce_dims((pred - z) ** 2, reduce).mean()


def ncsn_loss(
    score_model: IndexModel,
    x0: Tensor,
    sigmas: Tensor,
    *,
    reduce: str = "mean",
    generator: torch.Generator | None = None,
) -> Tensor:
    """NCSN's multi-scale DSM with lambda(sigma) = sigma^2 (Song & Ermon 2019, eqs. 5-6).

    1/2 E_{i, x_0, z} || sigma_i s_theta(x_0 + sigma_i z, i) + z ||^2, i uniform over the levels.

    Args:
        score_model: Noise-conditional score ``score_model(x, i)``, i of shape (B,) indexing ``sigmas``.
        x0: Clean data, shape (B, ...).
        sigmas: Noise levels (e.g. ``VESDE().discrete_sigmas(10)``), any order.
        reduce: ``"mean"`` or ``"sum"`` over the data dims.
    """
    sigmas = _check_schedule("sigmas", sigmas, 0.0, None)
    i, z = _level_draws(x0, sigmas.numel(), reduce, generator)
    sigma = append_dims(sigmas.to(dtype=x0.dtype, device=x0.device)[i], x0.ndim)
    score = score_model(x0 + sigma * z, i)
    _check_output("score_model", score, x0)
    return 0.5 * _reduce_dims((sigma * score + z) ** 2, reduce).mean()
