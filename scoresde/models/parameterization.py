"""The parameterisation layer: any network output (score, noise eps, or clean data x0) -> the score of an SDE.

For a linear SDE the perturbation kernel is x_t = m(t) x_0 + s(t) z (see :mod:`scoresde.sde`), so

    grad log p_0t(x_t | x_0) = -z / s(t) = (m(t) x_0 - x_t) / s(t)^2,

and the three usual targets give the score by (Ho et al. 2020 eq. 11; Song et al. 2021 appendix):

    prediction="score":  score = net(x, c)
    prediction="eps":    score = -eps_hat / s(t)                       ("division by the marginal std")
    prediction="x0":     score = (m(t) x0_hat - x_t) / s(t)^2
    prediction="edm":    EDM's preconditioned denoiser (Karras et al. 2022, eq. 7 and table 1), see below

EDM preconditioning for any linear SDE goes through the kernel's change of variables sigma = s(t) / m(t),
x^ = x_t / m(t) (then x^ = x_0 + sigma z, the variance-exploding form EDM works in):

    D(x^; sigma) = c_skip(sigma) x^ + c_out(sigma) F(c_in(sigma) x^; c_noise),
    c_skip = sigma_data^2 / (sigma^2 + sigma_data^2),  c_out = sigma sigma_data / sqrt(sigma^2 + sigma_data^2),
    c_in = 1 / sqrt(sigma^2 + sigma_data^2),

so the network's input c_in x^ = x_t / sqrt(s^2 + m^2 sigma_data^2) and its target have unit variance at every
noise level, and the implied estimate of x_0 never leaves the data's scale by more than c_out |F| (eps prediction
divides by m(t), about 0.007 at t = 1 under VP). D estimates x_0, so score = (m D - x_t) / s^2, written as
(c_out F / sigma^2 - x^ / (sigma^2 + sigma_data^2)) / m to stay finite as sigma -> 0.

Networks never see the SDE; only this wrapper does.
"""

from __future__ import annotations

import abc
import math

import torch
from torch import Tensor, nn

from .._utils import append_dims, batch_time
from .._validation import check_callable, check_choice, check_int, check_sde
from ..sde import SDE


class Prediction(abc.ABC):
    """What the network predicts; turns its output into the score."""

    @abc.abstractmethod
    def to_score(self, out: Tensor, x: Tensor, m: Tensor, s: Tensor) -> Tensor:
        """out, x: (B, *event_shape); m, s: the kernel's m(t), s(t), broadcastable to x."""


class ScorePrediction(Prediction):
    """The network outputs the score itself."""

    def to_score(self, out: Tensor, x: Tensor, m: Tensor, s: Tensor) -> Tensor:
        return out


class EpsPrediction(Prediction):
    """The network predicts the noise z of x_t = m x_0 + s z; score = -eps / s."""

    def to_score(self, out: Tensor, x: Tensor, m: Tensor, s: Tensor) -> Tensor:
        return -out / s


class X0Prediction(Prediction):
    """The network predicts the clean data x_0; score = (m x0_hat - x_t) / s^2."""

    def to_score(self, out: Tensor, x: Tensor, m: Tensor, s: Tensor) -> Tensor:
        return (m * out - x) / s**2


class EDMPrediction(Prediction):
    """EDM's preconditioned denoiser D = c_skip x^ + c_out F through sigma = s / m, x^ = x / m (module docstring).

    Args:
        sigma_data: The data's standard deviation (a positive number; the ScoreModel passes its own).
    """

    def __init__(self, sigma_data: float | Tensor = 1.0) -> None:
        self.sigma_data = sigma_data

    def coefficients(self, sigma: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """(c_skip, c_out, c_in) at noise level sigma (Karras et al. 2022, table 1), each of sigma's shape."""
        sd2 = self.sigma_data**2
        norm = torch.rsqrt(sigma**2 + sd2)
        return sd2 * norm**2, sigma * self.sigma_data * norm, norm

    def denoise(self, out: Tensor, x: Tensor, m: Tensor, s: Tensor) -> Tensor:
        """D(x^; sigma) = c_skip x^ + c_out F, the estimate of x_0 (shape of x)."""
        c_skip, c_out, _ = self.coefficients(s / m)
        return c_skip * (x / m) + c_out * out

    def to_score(self, out: Tensor, x: Tensor, m: Tensor, s: Tensor) -> Tensor:
        sigma, sd = s / m, self.sigma_data
        return (sd * out / (sigma * torch.sqrt(sigma**2 + sd**2)) - (x / m) / (sigma**2 + sd**2)) / m


PREDICTIONS: dict[str, type[Prediction]] = {
    "score": ScorePrediction,
    "eps": EpsPrediction,
    "x0": X0Prediction,
    "edm": EDMPrediction,
}


def measure_sigma_data(data: Tensor) -> float:
    """EDM's sigma_data: the standard deviation of the training data over all examples and dimensions.

    Args:
        data: Training data, shape (N, *event_shape), N >= 2.

    Returns:
        A positive float.
    """
    if not isinstance(data, Tensor) or data.ndim < 2 or data.shape[0] < 2:
        raise ValueError("sigma_data is measured from training data of shape (N, *event_shape) with N >= 2")
    value = float(data.double().std())
    return check_sigma_data(value)


def check_sigma_data(value: object) -> float:
    """``value`` as a float if it is a positive finite number, else ValueError naming sigma_data."""
    if isinstance(value, Tensor) and value.numel() == 1:
        value = float(value)
    ok = not isinstance(value, bool) and isinstance(value, (int, float)) and math.isfinite(value) and value > 0
    if not ok:
        raise ValueError(f"sigma_data must be a positive finite number (or 'auto': measured from the data), "
                         f"got {value!r}")  # fmt: skip
    return float(value)


def edm_input_scale(m: Tensor, s: Tensor, sigma_data: float | Tensor | None) -> Tensor:
    """EDM's c_in of x^ = x / m written for x: 1 / sqrt(s^2 + m^2 sigma_data^2), with 1 for a None sigma_data.

    The one input scaling of every network wrapper (:class:`ScoreModel`, and the consistency student, which must
    feed its network what its teacher's network saw). m, s: (B,) tensors; returns (B,) in their dtype.
    """
    if sigma_data is None:
        return torch.rsqrt(s**2 + m**2 * 1.0)
    sd = sigma_data if isinstance(sigma_data, Tensor) else torch.tensor(float(sigma_data), dtype=torch.float64)
    return torch.rsqrt(s**2 + m**2 * sd.to(m) ** 2)


class TimeInput(abc.ABC):
    """How the time t in [0, T] is presented to the network: a (B,) float tensor in [0, num_levels - 1]."""

    def __init__(self, num_levels: int) -> None:
        self.num_levels = num_levels

    def scaled(self, t: Tensor, T: float) -> Tensor:
        """c = (num_levels - 1) t / T, the common scale of both conventions."""
        return t * ((self.num_levels - 1) / T)

    @abc.abstractmethod
    def __call__(self, t: Tensor, T: float) -> Tensor: ...


class ContinuousTime(TimeInput):
    """The network sees c = (num_levels - 1) t / T unrounded; with the default 1000 levels that is 999 t / T,
    the scale DDPM++ feeds its sinusoidal embedding (Song et al. 2021), so a discrete-time network and a
    continuous-time one share their input range."""

    def __call__(self, t: Tensor, T: float) -> Tensor:
        return self.scaled(t, T)


class DiscreteTime(TimeInput):
    """The network sees the level index i = round((num_levels - 1) t / T) as a float (DDPM / NCSN indices)."""

    def __call__(self, t: Tensor, T: float) -> Tensor:
        return torch.round(self.scaled(t, T))


class LogSigmaTime(TimeInput):
    """The network sees EDM's c_noise = ln(sigma(t)) / 4 with sigma = s(t) / m(t) (Karras et al. 2022, table 1).

    Set by :class:`ScoreModel` through :meth:`bind`; ``num_levels`` is unused.
    """

    sde: SDE | None = None

    def bind(self, sde: SDE) -> LogSigmaTime:
        self.sde = sde
        return self

    def __call__(self, t: Tensor, T: float) -> Tensor:
        return torch.log(self.sde.sigma(t)) / 4


TIME_INPUTS: dict[str, type[TimeInput]] = {"continuous": ContinuousTime, "discrete": DiscreteTime,
                                           "log_sigma": LogSigmaTime}  # fmt: skip


class ScoreModel(nn.Module):
    """A network wrapped into a score function ``forward(x, t) -> grad_x log p_t(x)`` for a given SDE.

    The network is called as ``net(c_in * x, c)``, where

    * c is the time input (see ``time_input``): (num_levels - 1) t / T, rounded for ``"discrete"``;
    * c_in = 1 / sqrt(s(t)^2 + m(t)^2 sigma_data^2) if ``scale_input`` (the default), else 1: EDM's c_in of x^
      (Karras et al. 2022), which keeps the network's input at unit scale. Without ``sigma_data`` it is taken as 1,
      so c_in = 1 / sqrt(m^2 + s^2): exactly 1 for the VP SDE, close to 1 for sub-VP, 1 / sqrt(1 + s^2) for VE.

    Args:
        net: A network ``net(x, time_input)`` returning a tensor of x's shape.
        sde: The forward SDE whose m(t), s(t) convert the output.
        prediction: ``"eps"`` (default), ``"score"``, ``"x0"`` or ``"edm"`` (EDM preconditioning: needs
            ``sigma_data`` and ``scale_input``); see the module docstring.
        time_input: ``"continuous"`` (default), ``"discrete"`` or ``"log_sigma"`` (EDM's c_noise = ln(sigma) / 4).
        num_levels: Number of discrete levels N; sets the network's time scale [0, N - 1] in both cases.
        scale_input: Whether to multiply x by c_in before the network.
        sigma_data: The data's standard deviation (:func:`measure_sigma_data`), a positive finite number; kept as
            the buffer ``sigma_data`` of the state dict (so checkpoints carry it). None (allowed for every
            prediction but ``"edm"``): no buffer, and c_in uses 1 in its place.

    Shapes: x (B, *event_shape), t a float or a (B,) tensor in [0, T]; returns (B, *event_shape) in x's dtype.
    The network runs in its own parameter dtype (a float64 solver may call a float32 network); m(t), s(t) and the
    conversion to the score are computed in x's dtype.
    """

    def __init__(
        self,
        net: nn.Module,
        sde: SDE,
        *,
        prediction: str = "eps",
        time_input: str = "continuous",
        num_levels: int = 1000,
        scale_input: bool = True,
        sigma_data: float | None = None,
    ) -> None:
        super().__init__()
        check_callable("net", net)
        check_sde(sde)
        check_choice("prediction", prediction, PREDICTIONS)
        check_choice("time_input", time_input, TIME_INPUTS)
        check_int("num_levels", num_levels, 2)
        if prediction == "edm" and (sigma_data is None or not scale_input):
            raise ValueError("prediction='edm' needs sigma_data (a positive number, or 'auto' in the CLI's model "
                             "config) and scale_input=True")  # fmt: skip
        self.net = net
        self.sde = sde
        if sigma_data is not None:
            self.register_buffer("sigma_data", torch.tensor(check_sigma_data(sigma_data), dtype=torch.float64))
        else:
            self.sigma_data = None
        self.prediction = prediction
        self.time_input = time_input
        self.num_levels = num_levels
        self.scale_input = bool(scale_input)
        self._prediction = PREDICTIONS[prediction]()
        self._time = TIME_INPUTS[time_input](num_levels)
        if isinstance(self._time, LogSigmaTime):
            self._time.bind(sde)

    def extra_repr(self) -> str:
        return (
            f"sde={self.sde!r}, prediction={self.prediction!r}, time_input={self.time_input!r}, "
            f"num_levels={self.num_levels}, scale_input={self.scale_input}"
            + (f", sigma_data={float(self.sigma_data):.4g}" if self.sigma_data is not None else "")
        )

    def check_sde(self, sde: SDE) -> None:
        """Raise ValueError unless ``sde`` is the SDE this model was built for (the same object, or the same class
        with the same parameters): its output is a score only for that SDE's m(t), s(t)."""
        if sde != self.sde:
            raise ValueError(
                f"this score model was built for {self.sde!r} but is used with {sde!r}; sample and evaluate it "
                "with its own SDE (model.sde, or ckpt.sde of scoresde.load_checkpoint)"
            )

    def net_time(self, t: Tensor) -> Tensor:
        """The time input the network receives for times t of shape (B,)."""
        return self._time(t, self.sde.T)

    def input_scale(self, t: Tensor) -> Tensor:
        """c_in(t) of shape (B,): 1 / sqrt(s^2 + m^2 sigma_data^2) (sigma_data 1 if None), or ones without
        ``scale_input``."""
        return self._input_scale(self.sde.mean_scale(t), self.sde.std(t))

    def _input_scale(self, m: Tensor, s: Tensor) -> Tensor:
        return edm_input_scale(m, s, self.sigma_data) if self.scale_input else torch.ones_like(m)

    def _converter(self, like: Tensor) -> Prediction:
        if self.prediction == "edm":
            return EDMPrediction(self.sigma_data.to(like))
        return self._prediction

    def _net_output(self, x: Tensor, t: Tensor, y: Tensor | None, m: Tensor, s: Tensor) -> Tensor:
        x_in, c = append_dims(self._input_scale(m, s), x.ndim) * x, self.net_time(t)
        param = next(self.net.parameters(), None) if isinstance(self.net, nn.Module) else None
        if param is not None and param.is_floating_point() and param.dtype != x.dtype:
            x_in, c = x_in.to(param.dtype), c.to(param.dtype)  # e.g. float64 ODE solvers around a float32 net
        out = (self.net(x_in, c) if y is None else self.net(x_in, c, y)).to(x.dtype)
        if out.shape != x.shape:
            raise ValueError(f"net returned shape {tuple(out.shape)} for input of shape {tuple(x.shape)}")
        return out

    def denoise(self, x: Tensor, t: float | Tensor, y: Tensor | None = None) -> Tensor:
        """The implied estimate of x_0, E[x_0 | x_t] = (x_t + s^2 score) / m (Tweedie); shape of x."""
        t = batch_time(t, x)
        m, s = append_dims(self.sde.mean_scale(t), x.ndim), append_dims(self.sde.std(t), x.ndim)
        if self.prediction == "edm":
            out = self._net_output(x, t, y, m.reshape(-1), s.reshape(-1))
            return self._converter(x).denoise(out, x, m, s)
        return (x + s**2 * self(x, t, y)) / m

    @property
    def num_classes(self) -> int | None:
        """K of a label-conditional network (its null label), None for an unconditional one."""
        return getattr(self.net, "num_classes", None)

    def forward(self, x: Tensor, t: float | Tensor, y: Tensor | None = None) -> Tensor:
        """The score grad_x log p_t(x), or grad_x log p_t(x | y) for labels y of shape (B,); shape of x."""
        t = batch_time(t, x)
        m, s = self.sde.mean_scale(t), self.sde.std(t)  # (B,) each, computed once per call
        out = self._net_output(x, t, y, m, s)
        return self._converter(x).to_score(out, x, append_dims(m, x.ndim), append_dims(s, x.ndim))


def check_score_sde(sde: SDE, score_fn: object) -> None:
    """Raise ValueError if ``score_fn`` is a :class:`ScoreModel` built for another SDE; other callables pass.

    TypeError for an ``sde`` that is not an SDE, a ``score_fn`` that is not callable, or a consistency model
    (``is_consistency_model``), which has no score.
    """
    check_sde(sde)
    check_callable("score_fn", score_fn)
    if getattr(score_fn, "is_consistency_model", False):
        raise TypeError(
            "score_fn is a consistency model: it maps x_t to the trajectory's end x_eps and has no score; "
            "likelihoods, guidance and score-based solvers need a score model (e.g. its teacher)"
        )
    if isinstance(score_fn, ScoreModel):
        score_fn.check_sde(sde)
