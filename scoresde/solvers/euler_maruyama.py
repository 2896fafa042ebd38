"""Euler-Maruyama for the reverse-time SDE (Song et al. 2021, eq. 6; Kloeden & Platen 1992, sec. 9.1)."""

from __future__ import annotations

from torch import Tensor

from .base import GaussianSolver, GaussianTransition, StepContext


class EulerMaruyama(GaussianSolver):
    """One Euler-Maruyama step of dx = [f(t) x - g(t)^2 score(x, t)] dt + g(t) dw_bar, backwards in time.

    With dt_i = t_i - t_{i+1} > 0, the step length of the grid actually walked:

        x_{i+1} = x_i - [f(t_i) x_i - g(t_i)^2 s(x_i, t_i)] dt_i + g(t_i) sqrt(dt_i) z,   z ~ N(0, I).

    Strong order 1/2, weak order 1; one score evaluation per step.
    """

    order = 0.5
    default_steps = 1000

    def transition(self, x: Tensor, score: Tensor, i: int, ctx: StepContext) -> GaussianTransition:
        """The step's kernel given s(x_i, t_i): mean x_i (1 - f dt_i) + g^2 dt_i s, variance g^2 dt_i."""
        c = ctx.coeffs
        dt, g2 = c.dt[i], c.g2[i]
        return GaussianTransition(x * (1 - c.f[i] * dt) + (g2 * dt) * score, g2 * dt)
