"""Conditional sampling methods for a linear observation, and the driver behind ``inpaint`` and ``colorize``.

A method samples x ~ p(x | observed part of x = y) with an unconditional score. :class:`ConditionalMethod` is the
interface: where its steps fall (``grid``), what a run costs in score evaluations per sample (``cost``), and the
run itself (``run``). :func:`sample_conditional` validates the input, turns an ``nfe`` budget into a step count that
never exceeds it, times the run, and returns a :class:`~scoresde.solvers.SampleInfo`.
"""

from __future__ import annotations

import abc
from typing import Any

import torch
from torch import Tensor

from .._validation import check_generator, from_name
from ..consistency.parameterization import check_model_kind
from ..sde import SDE, ScoreFn
from ..solvers import grids
from ..solvers.base import CountingScore, SampleInfo, check_steps_or_nfe, steps_for_budget, timed
from .observation import BoundObservation, Observation


class ConditionalMethod(abc.ABC):
    """A sampler of p(x | y) for a :class:`BoundObservation` y of x."""

    default_steps: int = 1000

    def grid(self, sde: SDE, steps: int, eps: float) -> Tensor:
        """Grid times T = t_0 > ... > t_steps = eps (float64, shape (steps + 1,)); uniform in t by default."""
        return grids.uniform(sde, steps, eps)

    def for_budget(self, nfe: int | None) -> ConditionalMethod:
        """The method to run under a budget of ``nfe`` score evaluations per sample (None: none); itself by default.

        A method whose settings depend on the budget (the particle filter's number of particles) returns a copy
        with them fixed; :func:`sample_conditional` calls this before it plans the steps.
        """
        return self

    @abc.abstractmethod
    def cost(self, sde: SDE, steps: int, eps: float, denoise: bool) -> int:
        """Score evaluations per sample of a run with ``steps`` grid intervals (the final denoising included)."""

    @abc.abstractmethod
    def run(
        self,
        sde: SDE,
        score: CountingScore,
        obs: BoundObservation,
        times: Tensor,
        *,
        denoise: bool,
        generator: torch.Generator | None,
        progress: bool,
    ) -> tuple[Tensor, dict[str, Any]]:
        """Draw one sample per observation: x of shape (B, *event_shape), equal to y where observed, and extras.

        Runs without gradients, on :func:`~scoresde.solvers.base.integrate` (``denoise`` is its final step). The
        score evaluations per sample are counted by ``score`` (its rows over the batch).

        Returns:
            The samples and a dict of statistics for :attr:`SampleInfo.extras`.
        """

    def describe(self) -> dict[str, Any]:
        """Settings worth reporting in :attr:`SampleInfo.extras`."""
        return {}

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.describe().items())
        return f"{type(self).__name__}({args})"


def make_method(method: str | ConditionalMethod, table: dict[str, type], **options: Any) -> ConditionalMethod:
    """A method object from a name in ``table`` and its constructor options, or the object itself."""
    return from_name("method", method, table, ConditionalMethod, **options)


def sample_conditional(
    sde: SDE,
    score_fn: ScoreFn,
    observation: Observation,
    y: Tensor,
    method: ConditionalMethod,
    *,
    steps: int | None = None,
    nfe: int | None = None,
    eps: float = 1e-3,
    denoise: bool = True,
    generator: torch.Generator | None = None,
    progress: bool = False,
) -> tuple[Tensor, SampleInfo]:
    """Sample x given the observation ``y`` of x with ``method``; see :func:`scoresde.inpaint` for the arguments."""
    check_model_kind(sde, score_fn, method, eps)  # a consistency model only with method="consistency", and back
    obs = observation.bind(y)
    check_generator(generator, y.device, "y")
    check_steps_or_nfe(steps, nfe)
    grids.check_steps_eps(sde, 1 if steps is None else steps, eps)
    method = method.for_budget(nfe)
    if nfe is not None:
        steps = steps_for_budget(lambda k: method.cost(sde, k, eps, denoise), nfe, type(method).__name__)
    times = method.grid(sde, method.default_steps if steps is None else steps, eps)
    score = CountingScore(score_fn)

    def go() -> tuple[Tensor, dict[str, Any]]:
        with torch.no_grad():
            return method.run(sde, score, obs, times, denoise=denoise, generator=generator, progress=progress)

    (x, extras), wall = timed(go, y.device)
    x = obs.merge(x, obs.y)  # exactly y where observed, also after the denoising step
    extras = method.describe() | {"denoise": denoise, "budget": nfe} | extras
    return x, SampleInfo(score.rows // obs.batch, wall, len(times) - 1, type(method).__name__, extras, times)
