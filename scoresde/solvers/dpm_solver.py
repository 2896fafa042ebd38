"""DPM-Solver (Lu et al. 2022a) and DPM-Solver++ (Lu et al. 2022b): exponential integrators of the
probability-flow ODE in the log-SNR lambda = -log sigma(t), with a noise- or data-prediction model.

The exact solution of :mod:`.exponential` is x_t = L x_s - C (g1 M_s + g2 D1 + g3 D2 + ...): a k-th order method
estimates the derivatives D of the model output M in lambda, either from extra evaluations inside the step
(single-step, Runge-Kutta-like: Lu et al. 2022a, Algorithms 1-2) or from the outputs of the previous steps
(multistep, Adams-like: Lu et al. 2022b, Algorithms 2 and "3M"). Multistep methods spend one score evaluation per
step; their first steps use lower orders until enough history exists, and with ``lower_order_final`` the last
steps lower the order again (Lu et al. 2022b, sec. 5; their code's ``lower_order_final``).

Under an ``nfe`` budget the single-step method mixes orders so that the whole budget is spent ("DPM-Solver-fast",
Lu et al. 2022a, sec. 3.4): for order 3, K = nfe // 3 + 1 steps of orders [3, ..., 3, 2, 1], [3, ..., 3, 1] or
[3, ..., 3, 2] by nfe mod 3. On the log-SNR grid the K steps are uniform in lambda with inner nodes at fractions
1/2 or 1/3, 2/3 of each step; on other grids the steps and their inner nodes are the points of the grid with
nfe intervals (as their reference code).
"""

from __future__ import annotations

from itertools import accumulate, product
from typing import Any

import torch
from torch import Tensor

from ..sde import SDE
from . import grids
from .base import StepContext, check_count
from .exponential import PREDICTIONS, ExponentialIntegrator, Node, phi
from .unipc import FEW_STEPS

METHODS = ("multistep", "singlestep")
SOLVER_TYPES = ("dpmsolver", "taylor")


def fast_orders(nfe: int, order: int) -> list[int]:
    """Orders of the single-step steps that spend exactly ``nfe`` evaluations (Lu et al. 2022a, sec. 3.4)."""
    if order == 1:
        return [1] * nfe
    if order == 2:
        return [2] * (nfe // 2) + [1] * (nfe % 2)
    k = nfe // 3 + 1
    return [3] * (k - 2) + [2, 1] if nfe % 3 == 0 else [3] * (k - 1) + [nfe % 3]


class DPMSolver(ExponentialIntegrator):
    """DPM-Solver / DPM-Solver++ of order 1-3, single-step or multistep.

    The defaults are DPM-Solver-2M (multistep order 2, noise prediction, no lower-order final steps) on a grid that
    switches at 15 steps, with UniPC's: below 15 :func:`grids.logistic_mixed` (a bump at sigma = 1 on a high uniform
    floor), from 15 :func:`grids.logistic_narrow` (a narrower bump; UniPC's default then walks the log-SNR grid,
    which resolves the data's many scales). They were chosen on the six oracle problems at 6-20 NFE (the
    two-problem benchmarks/fast_solvers.py of commit 4f4c307, x_T draws of seeds 0 and 3) against the configurations
    the published DPM-Solver, UniPC and k-diffusion code recommend. These constants are fitted to those two problems;
    how they hold on the random problem families of today's benchmarks/fast_solvers.py (held-out split) is in
    docs/guides/samplers.md, and ``scoresde.optimize_schedule`` adapts the grid to a model.

    Args:
        order: 1 (DDIM), 2 (default) or 3.
        prediction: "noise" (DPM-Solver, Lu et al. 2022a) or "data" (DPM-Solver++, Lu et al. 2022b).
        method: "multistep" (1 score evaluation per step, 2M / 3M) or "singlestep" (``order`` evaluations per step;
            under an ``nfe`` budget the orders mix to spend it exactly).
        lower_order_final: Multistep only: lower the order of the last steps to the steps left (order 3: the last
            two steps at orders 2 and 1).
        solver_type: "dpmsolver" (the reference code's estimates of the derivative terms) or "taylor" (their Taylor
            coefficients; for multistep order 3 the exact ones: the reference's 3M weights the second divided
            difference by half, which makes it second order, while "taylor" is exact for quadratic model outputs).
        grid: Where the steps fall, a name in ``grids.GRIDS``; None (default): :func:`grids.logistic_mixed` below 15
            steps, else :func:`grids.logistic_narrow`.
        rho: Exponent of the "karras" grid (default 5).
    """

    default_grid = "logistic_mixed below 15 steps, else logistic_narrow"

    def __init__(
        self,
        order: int = 2,
        prediction: str = "noise",
        method: str = "multistep",
        lower_order_final: bool = False,
        solver_type: str = "dpmsolver",
        *,
        grid: str | None = None,
        rho: float = 5.0,
    ) -> None:
        super().__init__(prediction, grid=grid, rho=rho)
        if order not in (1, 2, 3) or isinstance(order, bool):
            raise ValueError(f"order must be 1, 2 or 3, got {order!r}")
        if method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {method!r}")
        if not isinstance(lower_order_final, bool):
            raise TypeError(f"lower_order_final must be a bool, got {type(lower_order_final).__name__}")
        if solver_type not in SOLVER_TYPES:
            raise ValueError(f"solver_type must be one of {SOLVER_TYPES}, got {solver_type!r}")
        self.order, self.method = order, method
        self.lower_order_final, self.solver_type = lower_order_final, solver_type
        self.nfe_per_step = 1 if method == "multistep" else order

    def grid(self, sde: SDE, steps: int, eps: float) -> Tensor:
        """The ``grid`` option's grid; by default :func:`grids.logistic_mixed` below 15 steps, else
        :func:`grids.logistic_narrow` (UniPC's default switches to the log-SNR grid at the same count)."""
        if self.grid_name is None and type(self).default_grid == DPMSolver.default_grid:
            return (grids.logistic_mixed if steps < FEW_STEPS else grids.logistic_narrow)(sde, steps, eps)
        return super().grid(sde, steps, eps)

    def plan(self, sde: SDE, eps: float, *, steps: int | None = None, nfe: int | None = None) -> Tensor:
        """Multistep: ``nfe`` steps. Single-step: ``steps`` steps of ``order``, or the order mix spending ``nfe``."""
        if self.method == "multistep" or nfe is None or steps is not None:
            return super().plan(sde, eps, steps=steps, nfe=nfe)
        orders = fast_orders(check_count("nfe", nfe), self.order)
        if self.grid_kind == "log_snr":
            return self.grid(sde, len(orders), eps)
        return self.grid(sde, nfe, eps)[list(accumulate(orders, initial=0))]

    def variants(self, steps: int) -> list[DPMSolver]:
        """Itself, then each prediction (DPM-Solver and DPM-Solver++) and, multistep, order 2 and 3 (2M / 3M) with
        and without lower-order final steps (their code's default is with); ``solver_type`` kept. Single-step orders
        change the grid's length under a budget and are not varied, nor are DPMSolver2 / DPMSolver3."""
        if type(self) is not DPMSolver:
            return [self]
        multi = self.method == "multistep"
        orders = sorted({self.order, 2, 3}) if multi else [self.order]
        finals = (False, True) if multi else (self.lower_order_final,)
        own = (self.order, self.prediction, self.lower_order_final)
        out = [self]
        for option in product(orders, PREDICTIONS, finals):
            if option != own:
                order, prediction, final = option
                out.append(DPMSolver(order, prediction, self.method, final, self.solver_type, grid=self.grid_name,
                                     rho=self.rho))  # fmt: skip
        return out

    def step(self, x: Tensor, i: int, ctx: StepContext) -> Tensor:
        if self.method == "multistep":
            return self._multistep(x, i, ctx)
        order, r = self._singlestep_plan(ctx)[i]
        a, b = self.node(ctx, i), self.node(ctx, i + 1)
        m0 = self.model(ctx, x, a)
        if order == 1:
            return self.first_order(x, m0, a, b)
        h = b.lam - a.lam
        s1 = self.stage(ctx, i, a.lam + r[0] * h)
        m1 = self.model(ctx, self.first_order(x, m0, a, s1), s1)
        if order == 2:
            return self._second(x, m0, m1, r[0], a, b)
        s2 = self.stage(ctx, i, a.lam + r[1] * h)
        m2 = self.model(ctx, self._second(x, m0, m1, r[0], a, s2, ratio=r[1], taylor=True), s2)
        return self._third(x, m0, m1, m2, r, a, b)

    def _singlestep_plan(self, ctx: StepContext) -> list[tuple[int, tuple[float, ...]]]:
        """(order, inner-node fractions r of h) of every step, computed once per run."""
        if "plan" not in ctx.memory:
            n = len(ctx.coeffs.dt)
            orders = [self.order] * n if ctx.nfe_budget is None else fast_orders(ctx.nfe_budget, self.order)
            if len(orders) != n:
                raise ValueError(f"{type(self).__name__} was given a grid of {n} steps for nfe={ctx.nfe_budget}")
            fractions = {1: (), 2: (0.5,), 3: (1 / 3, 2 / 3)}
            ctx.memory["plan"] = [(k, fractions[k]) for k in orders]
            fine = None
            if ctx.nfe_budget is not None and self.grid_kind != "log_snr":  # inner nodes on the fine grid
                fine = self.grid(ctx.sde, ctx.nfe_budget, ctx.coeffs.t[-1])
            starts = list(accumulate(orders, initial=0))
            # an explicit grid (sample(..., times=)) is not a subset of the solver's own fine grid: inner nodes at
            # the fractions above
            if fine is not None and torch.allclose(fine[starts], torch.tensor(ctx.coeffs.t, dtype=torch.float64)):
                lam = (-ctx.sde.sigma(fine).log()).tolist()
                ctx.memory["plan"] = [
                    (k, tuple((lam[j + q] - lam[j]) / (lam[j + k] - lam[j]) for q in range(1, k)))
                    for k, j in zip(orders, starts, strict=False)
                ]
        return ctx.memory["plan"]

    def _second(
        self, x: Tensor, m0: Tensor, m1: Tensor, r1: float, a: Node, b: Node, ratio: float = 1.0, taylor: bool = False
    ) -> Tensor:
        """Single-step second order (Lu et al. 2022a, Alg. 1; 2022b, Alg. 1) from a to b with m1 at fraction r1.

        With ``ratio`` = r2 and ``taylor`` it is the inner stage of the third-order method (their eq. for u_2).
        """
        tr = self.transfer(a, b)
        d = m1 - m0
        if taylor or self.solver_type == "taylor":
            return tr.L * x - (tr.C * phi(1, tr.hh)) * m0 - (tr.C * phi(2, tr.hh) * ratio / r1) * d
        return tr.L * x - (tr.C * phi(1, tr.hh)) * (m0 + (0.5 / r1) * d)

    def _third(self, x: Tensor, m0: Tensor, m1: Tensor, m2: Tensor, r: tuple[float, ...], a: Node, b: Node) -> Tensor:
        """Single-step third order (Lu et al. 2022a, Alg. 2; 2022b, Alg. 4 of the appendix)."""
        tr = self.transfer(a, b)
        r1, r2 = r
        if self.solver_type == "dpmsolver":
            return tr.L * x - (tr.C * phi(1, tr.hh)) * m0 - (tr.C * phi(2, tr.hh) / r2) * (m2 - m0)
        d1_0, d1_1 = (m1 - m0) / r1, (m2 - m0) / r2
        d1 = (r2 * d1_0 - r1 * d1_1) / (r2 - r1)
        d2 = (2 / (r2 - r1)) * (d1_1 - d1_0)
        return tr.L * x - tr.C * (phi(1, tr.hh) * m0 + phi(2, tr.hh) * d1 + phi(3, tr.hh) * d2)

    def _multistep(self, x: Tensor, i: int, ctx: StepContext) -> Tensor:
        """Multistep DPM-Solver(++)-2M / 3M (Lu et al. 2022b, Alg. 2 and appendix) with the model's history."""
        a, b = self.node(ctx, i), self.node(ctx, i + 1)
        history: list[tuple[Node, Tensor]] = ctx.memory.setdefault("history", [])
        history.append((a, self.model(ctx, x, a)))
        del history[: -self.order]
        order = min(self.order, len(history))
        if self.lower_order_final:
            order = min(order, len(ctx.coeffs.dt) - i)
        m0 = history[-1][1]
        if order == 1:
            return self.first_order(x, m0, a, b)
        tr = self.transfer(a, b)
        h = b.lam - a.lam
        (n1, m1) = history[-2]
        r0 = (a.lam - n1.lam) / h
        d1_0 = (m0 - m1) / r0
        if order == 2:
            if self.solver_type == "taylor":
                return tr.L * x - tr.C * (phi(1, tr.hh) * m0 + phi(2, tr.hh) * d1_0)
            return tr.L * x - (tr.C * phi(1, tr.hh)) * (m0 + 0.5 * d1_0)
        (n2, m2) = history[-3]
        r1 = (n1.lam - n2.lam) / h
        d1_1 = (m1 - m2) / r1
        d1 = d1_0 + (r0 / (r0 + r1)) * (d1_0 - d1_1)
        # d2 = h^2 M'' / 2 in their code, so "dpmsolver" integrates a quadratic M with half its curvature term (local
        # error O(h^3), global order 2, measured); "taylor" takes d2 = h^2 M'' and is exact for quadratic outputs.
        d2 = ((2 if self.solver_type == "taylor" else 1) / (r0 + r1)) * (d1_0 - d1_1)
        return tr.L * x - tr.C * (phi(1, tr.hh) * m0 + phi(2, tr.hh) * d1 + phi(3, tr.hh) * d2)

    def describe(self) -> dict[str, Any]:
        out = super().describe() | {"order": self.order, "method": self.method, "solver_type": self.solver_type}
        return out | ({"lower_order_final": self.lower_order_final} if self.method == "multistep" else {})


class DPMSolver2(DPMSolver):
    """DPM-Solver-2 (Lu et al. 2022a, Algorithm 1 with r1 = 1/2): single-step, noise prediction, 2 NFE per step."""

    order = 2
    default_grid = "log_snr"

    def __init__(self, *, grid: str | None = None, rho: float = 7.0) -> None:
        super().__init__(order=2, prediction="noise", method="singlestep", grid=grid, rho=rho)


class DPMSolver3(DPMSolver):
    """DPM-Solver-3 (Lu et al. 2022a, Algorithm 2 with r1 = 1/3, r2 = 2/3): single-step, noise prediction, 3 NFE."""

    order = 3
    default_grid = "log_snr"

    def __init__(self, *, grid: str | None = None, rho: float = 7.0) -> None:
        super().__init__(order=3, prediction="noise", method="singlestep", grid=grid, rho=rho)
