"""Consistency functions for every linear SDE: f(x, t) = c_skip(t) x + c_out(t) F(x, t) with f(x, eps) = x exactly.

A consistency function maps any point x_t of a probability-flow ODE trajectory to the trajectory's point x_eps at
the end time eps (Song, Dhariwal, Chen & Sutskever 2023, eq. 3). EDM's scaled state x_tilde = x / m(t) moves along
the trajectory with noise level sigma = s(t) / m(t) (see :mod:`scoresde.solvers.edm`), so we write the
parameterisation in sigma for every SDE and map back with m(eps):

    f(x, t) = m(eps) [c_skip(sigma) x_tilde + c_out(sigma) F(x, t)],     sigma = sigma(t),  sigma_min = sigma(eps).

Three output layers (the network F never sees the SDE; only this wrapper does):

* ``"edm"``: the paper's c_skip = sigma_data^2 / ((sigma - sigma_min)^2 + sigma_data^2),
  c_out = sigma_data (sigma - sigma_min) / sqrt(sigma^2 + sigma_data^2) (paper, appendix C).
* ``"eps"``: F predicts the noise, f = m(eps) [x_tilde - (sigma - sigma_min) F]: one DDIM step from sigma to
  sigma_min. An eps-predicting score network (the library's default) initialises it to its own one-step map.
* ``"x0"``: F predicts the clean data, f = m(eps) [c_skip x_tilde + (1 - c_skip) F] with the paper's c_skip.

Each gives c_skip(sigma_min) = 1 and c_out(sigma_min) = 0 in floating point, so the boundary condition
f(x, eps) = x holds exactly, not just approximately.
"""

from __future__ import annotations

import abc
import math

import torch
from torch import Tensor, nn

from .._utils import append_dims, batch_time
from .._validation import check_callable, check_choice, check_int, check_number, check_sde
from ..models.parameterization import TIME_INPUTS, LogSigmaTime, check_sigma_data, edm_input_scale
from ..sde import SDE


class ConsistencyOutput(abc.ABC):
    """The coefficients c_skip(sigma), c_out(sigma) of the scaled output c_skip x_tilde + c_out F."""

    @abc.abstractmethod
    def coefficients(self, sigma: Tensor, sigma_min: Tensor) -> tuple[Tensor, Tensor]:
        """(c_skip, c_out) for noise levels sigma, each of sigma's shape; c_skip = 1, c_out = 0 at sigma_min."""


def _c_skip(sigma: Tensor, sigma_min: Tensor, sigma_data: float) -> Tensor:
    return sigma_data**2 / ((sigma - sigma_min) ** 2 + sigma_data**2)


class EDMOutput(ConsistencyOutput):
    """The paper's c_skip, c_out (Song et al. 2023, app. C) with data scale ``sigma_data``."""

    def __init__(self, sigma_data: float) -> None:
        self.sigma_data = sigma_data

    def coefficients(self, sigma: Tensor, sigma_min: Tensor) -> tuple[Tensor, Tensor]:
        sd = self.sigma_data
        return _c_skip(sigma, sigma_min, sd), sd * (sigma - sigma_min) * torch.rsqrt(sigma**2 + sd**2)


class EpsOutput(ConsistencyOutput):
    """F predicts the noise: one DDIM step to sigma_min, c_skip = 1, c_out = -(sigma - sigma_min)."""

    def coefficients(self, sigma: Tensor, sigma_min: Tensor) -> tuple[Tensor, Tensor]:
        return torch.ones_like(sigma), sigma_min - sigma


class X0Output(ConsistencyOutput):
    """F predicts the clean data: c_skip as the paper's, c_out = 1 - c_skip."""

    def __init__(self, sigma_data: float) -> None:
        self.sigma_data = sigma_data

    def coefficients(self, sigma: Tensor, sigma_min: Tensor) -> tuple[Tensor, Tensor]:
        c_skip = _c_skip(sigma, sigma_min, self.sigma_data)
        return c_skip, 1 - c_skip


OUTPUTS = ("edm", "eps", "x0")
"""The accepted ``output`` names of :class:`ConsistencyModel`."""


class ConsistencyModel(nn.Module):
    """A network wrapped into a consistency function ``forward(x, t) -> x_eps`` for a given SDE and end time eps.

    The network is called as ``net(c_in * x, c)`` exactly as :class:`scoresde.models.ScoreModel` calls it: c_in =
    1 / sqrt(s^2 + m^2 sd_in^2) (EDM's c_in, :func:`~scoresde.models.parameterization.edm_input_scale`) and c the
    same time input ((num_levels - 1) t / T, or EDM's ln(sigma) / 4). With sd_in and the time input of the teacher,
    the student's network sees exactly what the teacher's network saw at every t, so a score network's weights fit
    a student of the same architecture (consistency distillation and tuning start from them); with an EDM teacher's
    sigma_data also in c_skip, c_out, f(x, t) at sigma >> sigma_data is m(eps) times the teacher's denoiser.

    Args:
        net: A network ``net(x, time_input)`` returning a tensor of x's shape.
        sde: The forward SDE whose probability-flow ODE the function inverts.
        eps: The end time, where f(x, eps) = x; sampling uses it as the grid's last time.
        output: ``"edm"`` (default, the paper's), ``"eps"`` or ``"x0"``; see the module docstring.
        sigma_data: The data's standard deviation, in c_skip, c_out and (by default) c_in (paper: 0.5 for images
            in [-1, 1]; the CLI takes the teacher's, or measures it from the data).
        input_sigma_data: sd_in of c_in, if not ``sigma_data``: the teacher's c_in rule where they differ (1.0 for
            a ScoreModel without sigma_data, and for consistency checkpoints written before sd_in existed).
        num_levels: The network's time scale [0, num_levels - 1] (as ScoreModel's).
        time_input: ``"continuous"`` (c = (num_levels - 1) t / T, default) or ``"log_sigma"`` (EDM's
            c_noise = ln(sigma(t)) / 4): the teacher's, so that its weights mean the same.
        scale_input: Whether to multiply x by c_in before the network (else c_in = 1).

    Shapes: x (B, *event_shape), t a float or a (B,) tensor in [eps, T]; returns (B, *event_shape) in x's dtype.
    """

    is_consistency_model = True  # read by the score-only entry points to refuse this model with a clear error

    def __init__(
        self,
        net: nn.Module,
        sde: SDE,
        *,
        eps: float = 1e-3,
        output: str = "edm",
        sigma_data: float = 0.5,
        input_sigma_data: float | None = None,
        num_levels: int = 1000,
        scale_input: bool = True,
        time_input: str = "continuous",
    ) -> None:
        super().__init__()
        check_callable("net", net)
        check_sde(sde)
        check_number("eps", eps, 0, sde.T, "()")
        check_choice("output", output, OUTPUTS)
        sigma_data = check_sigma_data(sigma_data)
        if input_sigma_data is not None:
            try:
                input_sigma_data = check_sigma_data(input_sigma_data)
            except ValueError:
                raise ValueError(f"input_sigma_data must be a positive finite number or None (sigma_data's), got "
                                 f"{input_sigma_data!r}") from None  # fmt: skip
        check_int("num_levels", num_levels, 2)
        if time_input not in ("continuous", "log_sigma"):
            raise ValueError(f"time_input must be 'continuous' or 'log_sigma', got {time_input!r}")
        self.time_input = time_input
        self._time = TIME_INPUTS[time_input](num_levels)
        if isinstance(self._time, LogSigmaTime):
            self._time.bind(sde)
        self.net, self.sde, self.eps, self.output = net, sde, float(eps), output
        self.sigma_data, self.num_levels, self.scale_input = sigma_data, num_levels, bool(scale_input)
        self.input_sigma_data = sigma_data if input_sigma_data is None else input_sigma_data
        self._output = {"edm": EDMOutput(self.sigma_data), "eps": EpsOutput(), "x0": X0Output(self.sigma_data)}[output]

    def extra_repr(self) -> str:
        return (
            f"sde={self.sde!r}, eps={self.eps}, output={self.output!r}, sigma_data={self.sigma_data:.4g}, "
            f"input_sigma_data={self.input_sigma_data:.4g}, "
            f"num_levels={self.num_levels}, scale_input={self.scale_input}, time_input={self.time_input!r}"
        )

    def check_sde(self, sde: SDE) -> None:
        """Raise ValueError unless ``sde`` is the SDE this model was built for (same class and parameters)."""
        if sde is not self.sde and (type(sde) is not type(self.sde) or repr(sde) != repr(self.sde)):
            raise ValueError(f"this consistency model was built for {self.sde!r} but is used with {sde!r}")

    @property
    def num_classes(self) -> int | None:
        """K of a label-conditional network, None for an unconditional one."""
        return getattr(self.net, "num_classes", None)

    def net_time(self, t: Tensor) -> Tensor:
        """The time input the network receives for times t of shape (B,) (the teacher's rule)."""
        return self._time(t, self.sde.T)

    def input_scale(self, t: Tensor) -> Tensor:
        """c_in(t) of shape (B,): 1 / sqrt(s^2 + m^2 input_sigma_data^2), or ones without ``scale_input``."""
        return self._input_scale(self.sde.mean_scale(t), self.sde.std(t))

    def _input_scale(self, m: Tensor, s: Tensor) -> Tensor:
        return edm_input_scale(m, s, self.input_sigma_data) if self.scale_input else torch.ones_like(m)

    def forward(self, x: Tensor, t: float | Tensor, y: Tensor | None = None) -> Tensor:
        """f(x, t): the estimate of the trajectory's point at eps, shape of x (f(x, eps) = x exactly)."""
        t = batch_time(t, x)
        m, s = self.sde.mean_scale(t), self.sde.std(t)  # (B,)
        t_eps = torch.full_like(t, self.eps)  # m(eps), sigma(eps) by the same expressions as at t, so that
        m_eps, s_eps = self.sde.mean_scale(t_eps), self.sde.std(t_eps)  # at t = eps the ratios are exactly 1, 0
        c_skip, c_out = self._output.coefficients(s / m, s_eps / m_eps)
        x_in, c = append_dims(self._input_scale(m, s), x.ndim) * x, self.net_time(t)
        param = next(self.net.parameters(), None) if isinstance(self.net, nn.Module) else None
        if param is not None and param.is_floating_point() and param.dtype != x.dtype:
            x_in, c = x_in.to(param.dtype), c.to(param.dtype)
        out = (self.net(x_in, c) if y is None else self.net(x_in, c, y)).to(x.dtype)
        if out.shape != x.shape:
            raise ValueError(f"net returned shape {tuple(out.shape)} for input of shape {tuple(x.shape)}")
        skip, scale = append_dims(c_skip * (m_eps / m), x.ndim), append_dims(c_out * m_eps, x.ndim)
        return skip * x + scale * out


def check_model_kind(sde: SDE, fn: object, solver: object, eps: float) -> None:
    """Refuse a model that does not output what ``solver`` consumes, or that belongs to another SDE or eps.

    ``solver`` is a Solver or a conditional method. One with ``model_kind = "consistency"`` takes a consistency
    function; every other one a score. A
    :class:`ConsistencyModel` given to a score solver, or a :class:`~scoresde.models.ScoreModel` given to a
    consistency sampler, raises TypeError; plain callables pass (e.g. an oracle's exact flow map).
    """
    from ..models.parameterization import ScoreModel, check_score_sde

    check_sde(sde)
    check_callable("score_fn", fn)
    wants = getattr(solver, "model_kind", "score")
    if getattr(fn, "is_consistency_model", False):
        if wants != "consistency":
            raise TypeError(
                f"score_fn is a consistency model (it maps x_t to x_eps, it is not a score): use solver='consistency' "
                f"(sample) or method='consistency' (inpaint, colorize), got {type(solver).__name__}"
            )
        fn.check_sde(sde)  # type: ignore[attr-defined]
        if not math.isclose(float(eps), fn.eps, rel_tol=1e-9, abs_tol=0.0):  # type: ignore[attr-defined]
            raise ValueError(f"eps={eps} but this consistency model's boundary is at eps={fn.eps}: pass eps={fn.eps}")
        return
    if wants == "consistency" and isinstance(fn, ScoreModel):
        raise TypeError(
            f"{type(solver).__name__} needs a consistency function f(x, t) -> x_eps, got a ScoreModel; distil one with "
            "scoresde.consistency (train=consistency_distillation teacher=RUN), or use a score-based solver or method"
        )
    check_score_sde(sde, fn)
