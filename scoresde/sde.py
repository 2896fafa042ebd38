"""Forward SDEs of Song et al., "Score-Based Generative Modeling through SDEs" (ICLR 2021).

All three SDEs of the paper are *linear* with scalar coefficients,

    dx = f(t) x dt + g(t) dw,            t in [0, T]                          (paper eq. 5)

so their perturbation kernels are Gaussian, x_t = m(t) x_0 + s(t) z with z ~ N(0, I), where the
mean scale m(t) = exp(int_0^t f) and the variance s(t)^2 solve d(s^2)/dt = 2 f s^2 + g^2, s(0)=0.
The base class turns the few scalar coefficients a subclass defines (f, g^2, m, s, the prior scale and
the inverse of the noise level sigma(t) = s(t)/m(t)) into everything else: the drift and diffusion,
the marginals, the exact one-step transition kernel, the prior and the reverse-time process.
No other code in the package asks which SDE it holds.

Shapes: data ``x`` has shape (B, *event_shape) of any rank; ``t`` is a Python float or a tensor of
shape (B,). Per-sample scalars (diffusion, std) are returned with shape (B,); use
:func:`scoresde._utils.append_dims` to broadcast them.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable
from typing import NamedTuple

import torch
from torch import Tensor

from ._utils import append_dims, batch_time, check_time_range, sum_except_batch
from ._validation import check_callable, check_int

ScoreFn = Callable[[Tensor, Tensor], Tensor]
"""A score function ``score_fn(x, t) -> Tensor`` with x of shape (B, ...) and t of shape (B,)."""


class Marginal(NamedTuple):
    """The Gaussian perturbation kernel p_0t(x_t | x_0) = N(mean, std^2 I)."""

    mean: Tensor  # (B, *event_shape)
    std: Tensor  # (B,)


class Coefficients(NamedTuple):
    """Drift f(x, t) (shape of x) and diffusion g(t) (shape (B,)) of an SDE at (x, t)."""

    drift: Tensor
    diffusion: Tensor


class ScalarCoefficients(NamedTuple):
    """The scalar coefficients of a linear SDE at times t, each of t's shape, dtype and device.

    Attributes:
        f: Drift coefficient f(t) of dx = f(t) x dt + g(t) dw.
        g2: Squared diffusion g(t)^2.
        m: Mean scale m(t) of the perturbation kernel.
        s: Standard deviation s(t) of the perturbation kernel.
    """

    f: Tensor
    g2: Tensor
    m: Tensor
    s: Tensor


class Discretization(NamedTuple):
    """One step x_{i+1} = x_i + f + G z of a discretised SDE; f has x's shape, G shape (B,)."""

    f: Tensor
    G: Tensor


def _positive_finite(name: str, value: float) -> float:
    value = float(value)
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{name} must be a positive finite number, got {value}")
    return value


class SDE(abc.ABC):
    """A linear forward SDE dx = f(t) x dt + g(t) dw on [0, T] with a Gaussian prior N(0, prior_std^2 I).

    Subclasses implement the scalar coefficients ``_f``, ``_g2``, ``_mean_scale``, ``_std``,
    ``_t_from_sigma`` and the attribute ``prior_std``; they may override ``_transition_var`` with a
    numerically stabler closed form.
    """

    prior_std: float = 1.0

    def __init__(self, T: float = 1.0) -> None:
        self._T = _positive_finite("T", T)

    def _params(self) -> tuple[float, ...]:
        """The numbers that define this SDE within its class (with the class: its identity for ``==`` and hashing)."""
        return (self.T,)

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, SDE):
            return NotImplemented
        return type(self) is type(other) and self._params() == other._params()

    def __hash__(self) -> int:
        return hash((type(self), self._params()))

    @property
    def T(self) -> float:
        """End time of the forward process."""
        return self._T

    # ----------------------------------------------------------------- scalar coefficients
    @abc.abstractmethod
    def _f(self, t: Tensor) -> Tensor: ...

    @abc.abstractmethod
    def _g2(self, t: Tensor) -> Tensor: ...

    @abc.abstractmethod
    def _mean_scale(self, t: Tensor) -> Tensor: ...

    @abc.abstractmethod
    def _std(self, t: Tensor) -> Tensor: ...

    @abc.abstractmethod
    def _t_from_sigma(self, sigma: Tensor) -> Tensor: ...

    def _transition_var(self, t: Tensor, dt: Tensor) -> Tensor:
        """Variance of x_t given x_{t-dt}: s(t)^2 - r^2 s(t-dt)^2 with r = m(t)/m(t-dt)."""
        r = self._mean_scale(t) / self._mean_scale(t - dt)
        return (self._std(t) ** 2 - r**2 * self._std(t - dt) ** 2).clamp_min(0.0)

    def coefficients(self, t: Tensor) -> ScalarCoefficients:
        """f(t), g(t)^2, m(t) and s(t) in ``t``'s shape, dtype and device, without validating ``t``.

        The accessor for solvers and likelihood terms, which evaluate it at times inside a grid already checked
        against [0, T] (so no per-call check and no host-device synchronisation); user code should prefer the
        checked :meth:`f`, :meth:`g2`, :meth:`mean_scale` and :meth:`std`.

        Args:
            t: Times in [0, T], a tensor of any shape.
        """
        return ScalarCoefficients(self._f(t), self._g2(t), self._mean_scale(t), self._std(t))

    def _coeff_time(self, t: float | Tensor, name: str = "t") -> Tensor:
        check_time_range(t, 0.0, self.T, name=name)
        return t if isinstance(t, Tensor) else torch.tensor(float(t), dtype=torch.get_default_dtype())

    def f(self, t: float | Tensor) -> Tensor:
        """Drift coefficient f(t) of dx = f(t) x dt + g(t) dw."""
        return self._f(self._coeff_time(t))

    def g(self, t: float | Tensor) -> Tensor:
        """Diffusion coefficient g(t)."""
        return self._g2(self._coeff_time(t)).sqrt()

    def g2(self, t: float | Tensor) -> Tensor:
        """Squared diffusion coefficient g(t)^2."""
        return self._g2(self._coeff_time(t))

    def mean_scale(self, t: float | Tensor) -> Tensor:
        """Mean scale m(t) = exp(int_0^t f(u) du) of the perturbation kernel."""
        return self._mean_scale(self._coeff_time(t))

    def std(self, t: float | Tensor) -> Tensor:
        """Standard deviation s(t) of the perturbation kernel."""
        return self._std(self._coeff_time(t))

    def sigma(self, t: float | Tensor) -> Tensor:
        """Noise level sigma(t) = s(t) / m(t): x_t / m(t) = x_0 + sigma(t) z (Karras et al. 2022)."""
        t = self._coeff_time(t)
        return self._std(t) / self._mean_scale(t)

    def t_from_sigma(self, sigma: float | Tensor) -> Tensor:
        """Inverse of :meth:`sigma`: the time at which the noise level s(t)/m(t) equals ``sigma``."""
        if not isinstance(sigma, Tensor):
            sigma = torch.tensor(float(sigma), dtype=torch.get_default_dtype())
        if not bool(torch.isfinite(sigma).all()) or bool((sigma < 0).any()):
            raise ValueError("sigma must be finite and non-negative")
        return self._t_from_sigma(sigma)

    # ----------------------------------------------------------------- the process on data
    def _time(self, t: float | Tensor, x: Tensor) -> Tensor:
        check_time_range(t, 0.0, self.T)
        return batch_time(t, x)

    def sde(self, x: Tensor, t: float | Tensor) -> Coefficients:
        """Drift f(t) x and diffusion g(t) of the forward SDE (paper eq. 5).

        Args:
            x: State, shape (B, *event_shape).
            t: Time in [0, T], a float or shape (B,).
        """
        t = self._time(t, x)
        return Coefficients(append_dims(self._f(t), x.ndim) * x, self._g2(t).sqrt())

    def marginal_prob(self, x0: Tensor, t: float | Tensor) -> Marginal:
        """Mean m(t) x_0 and std s(t) of the perturbation kernel p_0t(x_t | x_0)."""
        t = self._time(t, x0)
        return Marginal(append_dims(self._mean_scale(t), x0.ndim) * x0, self._std(t))

    def perturb(self, x0: Tensor, t: float | Tensor, noise: Tensor) -> Tensor:
        """Sample the kernel: x_t = m(t) x_0 + s(t) z for the given standard-normal ``noise`` z."""
        if noise.shape != x0.shape:
            raise ValueError(f"noise has shape {tuple(noise.shape)}, expected x0's {tuple(x0.shape)}")
        mean, std = self.marginal_prob(x0, t)
        return mean + append_dims(std, x0.ndim) * noise

    def prior_sampling(
        self,
        shape: tuple[int, ...] | torch.Size,
        *,
        generator: torch.Generator | None = None,
        device: torch.device | str | None = None,
        dtype: torch.dtype | None = None,
    ) -> Tensor:
        """Draw x_T ~ N(0, prior_std^2 I) of the given shape (B, *event_shape)."""
        shape = tuple(int(n) for n in shape)
        if len(shape) < 1 or any(n <= 0 for n in shape):
            raise ValueError(f"shape must be a non-empty tuple of positive sizes, got {shape}")
        if generator is not None and device is None:
            device = generator.device
        z = torch.randn(shape, generator=generator, device=device, dtype=dtype)
        return self.prior_std * z

    def prior_logp(self, z: Tensor) -> Tensor:
        """Log-density of the prior N(0, prior_std^2 I), summed over all non-batch dims: (B, ...) -> (B,)."""
        d = z[0].numel()
        var = self.prior_std**2
        return -0.5 * d * math.log(2 * math.pi * var) - sum_except_batch(z**2) / (2 * var)

    def discretize(self, x: Tensor, t: float | Tensor, dt: float | Tensor) -> Discretization:
        """Exact one-step transition of the forward SDE from t - dt to t: x_t = x_{t-dt} + f + G z.

        Because the SDE is linear, the kernel is Gaussian: x_t = r x_{t-dt} + sqrt(s_t^2 - r^2 s_{t-dt}^2) z
        with r = m(t)/m(t-dt). For VP this is DDPM's step with beta_i = 1 - r^2 (Ho et al. 2020 eq. 2),
        for VE the SMLD step with G^2 = sigma_t^2 - sigma_{t-dt}^2 (paper eqs. 9-10), on *any* grid; so
        beta_i < 1 for every step size and ancestral sampling never degenerates.

        Args:
            x: State at time t - dt (the reverse samplers pass x at time t), shape (B, ...).
            t: Later end of the step, in [dt, T].
            dt: Positive step length.
        """
        t = self._time(t, x)
        dt = batch_time(dt, x, name="dt")
        if bool((dt <= 0).any()):
            raise ValueError("dt must be positive")
        check_time_range(t - dt, 0.0, self.T, name="t - dt")
        r = self._mean_scale(t) / self._mean_scale(t - dt)
        return Discretization(append_dims(r - 1, x.ndim) * x, self._transition_var(t, dt).sqrt())

    def reverse(self, score_fn: ScoreFn, probability_flow: bool = False) -> ReverseSDE:
        """The reverse-time SDE (paper eq. 6) or, with ``probability_flow=True``, the probability-flow ODE (eq. 13)."""
        return ReverseSDE(self, score_fn, probability_flow=probability_flow)


class ReverseSDE:
    """Reverse-time process of a forward SDE given the score of its marginals.

    dx = [f(t) x - c g(t)^2 grad_x log p_t(x)] dt + [c == 1] g(t) dw_bar,  integrated from T down to 0,

    with c = 1 for the reverse SDE (paper eq. 6) and c = 1/2 for the probability-flow ODE (eq. 13),
    which has zero diffusion. Drifts are stated in forward time: a solver steps with negative dt.
    """

    def __init__(self, sde: SDE, score_fn: ScoreFn, probability_flow: bool = False) -> None:
        check_callable("score_fn", score_fn)
        self.forward_sde = sde
        self.score_fn = score_fn
        self.probability_flow = bool(probability_flow)
        self._c = 0.5 if self.probability_flow else 1.0

    @property
    def T(self) -> float:
        return self.forward_sde.T

    def _score(self, x: Tensor, t: Tensor) -> Tensor:
        score = self.score_fn(x, t)
        if score.shape != x.shape:
            raise ValueError(f"score_fn returned shape {tuple(score.shape)} for x of shape {tuple(x.shape)}")
        return score

    def sde(self, x: Tensor, t: float | Tensor) -> Coefficients:
        """Reverse drift f x - c g^2 score (shape of x) and diffusion (g, or 0 for the ODE), one score call."""
        fwd = self.forward_sde
        t = fwd._time(t, x)
        g2 = fwd._g2(t)
        drift = append_dims(fwd._f(t), x.ndim) * x - self._c * append_dims(g2, x.ndim) * self._score(x, t)
        diffusion = torch.zeros_like(g2) if self.probability_flow else g2.sqrt()
        return Coefficients(drift, diffusion)

    def discretize(self, x: Tensor, t: float | Tensor, dt: float | Tensor) -> Discretization:
        """Reverse-diffusion discretisation (paper eq. 46): x_{t-dt} = x_t - f + G^2 c score + [c == 1] G z.

        Returns ``Discretization(f_rev, G_rev)`` with f_rev = f - c G^2 score, so that the step reads
        x_{t-dt} = x_t - f_rev + G_rev z. One score call.
        """
        fwd = self.forward_sde
        f, G = fwd.discretize(x, t, dt)
        t = batch_time(t, x)
        rev_f = f - self._c * append_dims(G**2, x.ndim) * self._score(x, t)
        rev_G = torch.zeros_like(G) if self.probability_flow else G
        return Discretization(rev_f, rev_G)


class VPSDE(SDE):
    """Variance-preserving SDE, the continuous limit of DDPM (paper eq. 11, appendix B).

    dx = -1/2 beta(t) x dt + sqrt(beta(t)) dw with beta(t) = beta_min + t (beta_max - beta_min) / T.
    With B(t) = int_0^t beta: m(t) = exp(-B/2), s(t)^2 = 1 - exp(-B); prior N(0, I).
    """

    def __init__(self, beta_min: float = 0.1, beta_max: float = 20.0, T: float = 1.0) -> None:
        super().__init__(T)
        self.beta_min = _positive_finite("beta_min", beta_min)
        self.beta_max = _positive_finite("beta_max", beta_max)
        if self.beta_max < self.beta_min:
            raise ValueError(f"beta_max ({beta_max}) must be >= beta_min ({beta_min})")

    def __repr__(self) -> str:
        return f"{type(self).__name__}(beta_min={self.beta_min}, beta_max={self.beta_max}, T={self.T})"

    def _params(self) -> tuple[float, ...]:
        return (self.beta_min, self.beta_max, self.T)

    def beta(self, t: float | Tensor) -> Tensor:
        """The noise rate beta(t)."""
        return self._beta(self._coeff_time(t))

    def _beta(self, t: Tensor) -> Tensor:
        return self.beta_min + t * (self.beta_max - self.beta_min) / self.T

    def _integral_beta(self, t: Tensor) -> Tensor:
        return self.beta_min * t + 0.5 * (self.beta_max - self.beta_min) / self.T * t**2

    def _delta_integral_beta(self, t: Tensor, dt: Tensor) -> Tensor:
        """int_{t-dt}^t beta, without the cancellation of B(t) - B(t - dt)."""
        return dt * (self.beta_min + 0.5 * (self.beta_max - self.beta_min) / self.T * (2 * t - dt))

    def _t_from_integral_beta(self, B: Tensor) -> Tensor:
        slope = (self.beta_max - self.beta_min) / self.T
        # Root of beta_min t + slope t^2 / 2 = B, written to avoid cancellation when slope is small.
        return 2 * B / (self.beta_min + torch.sqrt(self.beta_min**2 + 2 * slope * B))

    def _f(self, t: Tensor) -> Tensor:
        return -0.5 * self._beta(t)

    def _g2(self, t: Tensor) -> Tensor:
        return self._beta(t)

    def _mean_scale(self, t: Tensor) -> Tensor:
        return torch.exp(-0.5 * self._integral_beta(t))

    def _std(self, t: Tensor) -> Tensor:
        return torch.sqrt(-torch.expm1(-self._integral_beta(t)))

    def _transition_var(self, t: Tensor, dt: Tensor) -> Tensor:
        return -torch.expm1(-self._delta_integral_beta(t, dt))

    def _t_from_sigma(self, sigma: Tensor) -> Tensor:
        # sigma^2 = s^2 / m^2 = e^B - 1
        return self._t_from_integral_beta(torch.log1p(sigma**2))

    def discrete_betas(self, N: int) -> Tensor:
        """DDPM's linear schedule beta_i = beta_bar_i / N, i = 0..N-1 (float64, shape (N,)).

        With the defaults and N = 1000 these are Ho et al.'s 1e-4 ... 0.02; the VP SDE is their N -> inf limit.
        """
        N = check_int("N (number of discrete levels)", N, 2)
        return torch.linspace(self.beta_min / N, self.beta_max / N, N, dtype=torch.float64)


class SubVPSDE(VPSDE):
    """Sub-VP SDE (paper eq. 17): the VP drift with g(t)^2 = beta(t) (1 - exp(-2 B(t))).

    Its variance s(t)^2 = (1 - exp(-B))^2 stays below the VP one at every t; m(t) is VP's; prior N(0, I).
    """

    def _g2(self, t: Tensor) -> Tensor:
        return self._beta(t) * -torch.expm1(-2 * self._integral_beta(t))

    def _std(self, t: Tensor) -> Tensor:
        return -torch.expm1(-self._integral_beta(t))

    def _transition_var(self, t: Tensor, dt: Tensor) -> Tensor:
        # (1 - q)(1 - q e^{-2 B(t-dt)}) with q = e^{-(B(t) - B(t-dt))}, factored to avoid cancellation.
        dB = self._delta_integral_beta(t, dt)
        return torch.expm1(-dB) * torch.expm1(-(2 * self._integral_beta(t) - dB))

    def _t_from_sigma(self, sigma: Tensor) -> Tensor:
        # sigma = (1 - e^{-B}) e^{B/2} = 2 sinh(B/2)
        return self._t_from_integral_beta(2 * torch.asinh(sigma / 2))

    def discrete_betas(self, N: int) -> Tensor:
        raise ValueError("the sub-VP SDE has no discrete DDPM counterpart; use VPSDE.discrete_betas")


class VESDE(SDE):
    """Variance-exploding SDE, the continuous limit of NCSN/SMLD (paper eq. 9, appendix C).

    dx = sqrt(d[sigma^2(t)]/dt) dw with sigma(t) = sigma_min (sigma_max / sigma_min)^(t/T).
    Exactly (paper eq. 29) m(t) = 1 and s(t)^2 = sigma(t)^2 - sigma_min^2; prior N(0, sigma_max^2 I).
    """

    def __init__(self, sigma_min: float = 0.01, sigma_max: float = 50.0, T: float = 1.0) -> None:
        super().__init__(T)
        self.sigma_min = _positive_finite("sigma_min", sigma_min)
        self.sigma_max = _positive_finite("sigma_max", sigma_max)
        if self.sigma_min >= self.sigma_max:
            raise ValueError(f"sigma_min ({sigma_min}) must be smaller than sigma_max ({sigma_max})")
        self._log_ratio = math.log(self.sigma_max / self.sigma_min)

    def __repr__(self) -> str:
        return f"VESDE(sigma_min={self.sigma_min}, sigma_max={self.sigma_max}, T={self.T})"

    def _params(self) -> tuple[float, ...]:
        return (self.sigma_min, self.sigma_max, self.T)

    @property
    def prior_std(self) -> float:  # type: ignore[override]
        return self.sigma_max

    def noise_level(self, t: float | Tensor) -> Tensor:
        """The geometric noise level sigma(t) = sigma_min (sigma_max / sigma_min)^(t/T) of NCSN."""
        return self._noise_level(self._coeff_time(t))

    def _noise_level(self, t: Tensor) -> Tensor:
        return self.sigma_min * torch.exp(t / self.T * self._log_ratio)

    def _f(self, t: Tensor) -> Tensor:
        return torch.zeros_like(t)

    def _g2(self, t: Tensor) -> Tensor:
        return self._noise_level(t) ** 2 * (2 * self._log_ratio / self.T)

    def _mean_scale(self, t: Tensor) -> Tensor:
        return torch.ones_like(t)

    def _std(self, t: Tensor) -> Tensor:
        return self.sigma_min * torch.sqrt(torch.expm1(2 * t / self.T * self._log_ratio))

    def _transition_var(self, t: Tensor, dt: Tensor) -> Tensor:
        return -(self._noise_level(t) ** 2) * torch.expm1(-2 * dt / self.T * self._log_ratio)

    def _t_from_sigma(self, sigma: Tensor) -> Tensor:
        return self.T * torch.log1p((sigma / self.sigma_min) ** 2) / (2 * self._log_ratio)

    def discrete_sigmas(self, N: int) -> Tensor:
        """NCSN's geometric noise levels sigma_min ... sigma_max, increasing (float64, shape (N,))."""
        N = check_int("N (number of discrete levels)", N, 2)
        return torch.exp(torch.linspace(math.log(self.sigma_min), math.log(self.sigma_max), N, dtype=torch.float64))
