"""UniPC (Zhao et al. 2023): a multistep predictor (UniP) and a corrector (UniC) that reuses the next step's model
evaluation, so the corrector raises the order by one at no extra score evaluation.

In the notation of :mod:`.exponential`, a step from t_{i} (node 0) to t_{i+1} with h = lambda_{i+1} - lambda_i
uses the previous model outputs M_{-k} at r_k = (lambda_{-k} - lambda_0) / h and D_k = (M_{-k} - M_0) / r_k:

    UniP-p:  x~_{i+1} = L x_i - C g1(hh) M_0 - C B(h) sum_{k<p} a_k D_k                  (their eq. 8 / Alg. 2)
    UniC-p:  x_{i+1}  = L x_i - C g1(hh) M_0 - C B(h) (sum_{k<p} a^c_k D_k + a^c_p (M~_{i+1} - M_0))

with M~_{i+1} = M(x~_{i+1}, t_{i+1}), which is also the model output the next step starts from. The weights solve
R a = b with R_{jk} = r_k^j and b_j = j! g_{j+1}(hh) / B(h) (their Theorem 3.1; r_p = 1 for the corrector);
order 2 predictors and order 1 correctors take their closed-form a = 1/2. B(h) = hh ("bh1") or e^hh - 1 ("bh2");
"auto" takes bh1 for runs below 10 steps (FEW_STEPS).
The corrector is skipped after the last step (it would need one more evaluation). The first steps use lower
orders until enough history exists; with ``lower_order_final`` the last steps lower the order again.
"""

from __future__ import annotations

import math
from itertools import product
from typing import Any

import torch
from torch import Tensor

from ..sde import SDE
from . import grids
from .base import StepContext
from .exponential import PREDICTIONS, ExponentialIntegrator, Node, Transfer, phi

VARIANTS = ("bh1", "bh2", "auto")
FEW_STEPS = 10
"""The published step-count threshold of both packages: UniPC's docstring ("bh1 for unconditional sampling when
steps < 10, and bh2 otherwise", the authors' diffusers port, UniPCMultistepScheduler) and DPM-Solver's code, which
lowers the order of its final steps only below it (``lower_order_final and steps < 10`` in dpm_solver_pytorch.py)
and whose README advises its second-order multistep method for ``steps <= 10``. The fast solvers' default rules
switch here (``UniPC``, ``DPMSolver``)."""


def unipc_weights(rks: list[float], tr: Transfer, b_h: float) -> list[float]:
    """Solve sum_k a_k r_k^j = j! g_{j+1}(hh) / B(h), j = 0..len(rks)-1 (Zhao et al. 2023, eq. 9), in float64."""
    p = len(rks)
    rhs = [math.factorial(j + 1) * phi(j + 2, tr.hh) / b_h for j in range(p)]
    if p == 1:  # r^0 = 1
        return rhs
    mat = torch.tensor([[r**j for r in rks] for j in range(p)], dtype=torch.float64)
    return torch.linalg.solve(mat, torch.tensor(rhs, dtype=torch.float64)).tolist()


class UniPC(ExponentialIntegrator):
    """UniPC-p: UniP-p predictor with the UniC corrector (Zhao et al. 2023, Algorithms 1-3), one NFE per step.

    The defaults are data prediction with lower-order final steps and B(h) = e^h - 1, and switch at ``FEW_STEPS``
    = 10 steps. Below 10 they are the defaults of the authors' diffusers port (UniPCMultistepScheduler:
    ``solver_order=2``, ``solver_type="bh2"``, ``predict_x0=True``, ``lower_order_final=True``, timesteps spaced
    uniformly in time): order 2 on the time-uniform grid. From 10 they are the authors' advice for low-resolution
    models (their score_sde example, example/score_sde_pytorch: order 3 on the log-SNR grid; "bh2 otherwise"),
    which resolves data spread over several decades of scale. The rule was chosen among the published settings on
    the selection split of benchmarks/fast_solvers.py (12 random problems x 3 SDEs, seeds 0-11; the comparison:
    benchmarks/default_rules.py) and is reported on its held-out split (docs/guides/samplers.md). With the exact
    score noise prediction is often more accurate, but with a learned score it overshoots at 5-10 NFE, so data
    prediction is the default (the measurements: docs/guides/benchmarks.md).

    Args:
        order: Order p of the predictor, 1-3 (the corrector adds one), or "auto" (default: 2 for runs below 10
            steps, else 3).
        variant: "bh1" (B(h) = h), "bh2" (B(h) = e^h - 1, default) or "auto" (bh1 for runs below 10 steps, else
            bh2: the UniPC docstring's "bh1 for unconditional sampling when steps < 10").
        prediction: "data" (their code's default) or "noise".
        lower_order_final: Lower the order of the last steps to the steps left (their code's default).
        grid: Where the steps fall, a name in ``grids.GRIDS``; None (default): "uniform" (in time) below 10 steps,
            else "log_snr" (uniform in lambda).
        rho: Exponent of the "karras" grid.
    """

    default_grid = "uniform below 10 steps, else log_snr"

    def __init__(
        self,
        order: int | str = "auto",
        variant: str = "bh2",
        prediction: str = "data",
        lower_order_final: bool = True,
        *,
        grid: str | None = None,
        rho: float = 7.0,
    ) -> None:
        super().__init__(prediction, grid=grid, rho=rho)
        if order not in (1, 2, 3, "auto") or isinstance(order, bool):
            raise ValueError(f"order must be 1, 2, 3 or 'auto', got {order!r}")
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        if not isinstance(lower_order_final, bool):
            raise TypeError(f"lower_order_final must be a bool, got {type(lower_order_final).__name__}")
        self.order, self.variant, self.lower_order_final = order, variant, lower_order_final

    def grid(self, sde: SDE, steps: int, eps: float) -> Tensor:
        """The ``grid`` option's grid; by default "uniform" for runs below 10 steps and "log_snr" from 10."""
        if self.grid_name is None:
            return grids.make("uniform" if steps < FEW_STEPS else "log_snr", sde, steps, eps)
        return super().grid(sde, steps, eps)

    def b_of_h(self, hh: float, steps: int) -> float:
        """B(h) of a run of ``steps`` steps: hh ("bh1") or e^hh - 1 ("bh2"); "auto" picks by the step count."""
        variant = self.variant if self.variant != "auto" else self.resolved_variant(steps)
        return hh if variant == "bh1" else math.expm1(hh)

    def resolved(self, steps: int) -> UniPC:
        """This solver with "auto" options replaced by what they mean for a run of ``steps`` steps."""
        order = self.order if self.order != "auto" else (2 if steps < FEW_STEPS else 3)
        variant = self.variant if self.variant != "auto" else self.resolved_variant(steps)
        return UniPC(order, variant, self.prediction, self.lower_order_final, grid=self.grid_name, rho=self.rho)

    def variants(self, steps: int) -> list[UniPC]:
        """Itself, then UniPC of order 2 and 3 with each B(h) and each prediction (``lower_order_final`` and the
        grid option kept): the settings the published code offers, one evaluation per step for all of them.
        "auto" options count as what they resolve to for ``steps`` steps."""
        concrete = self.resolved(steps)
        own = (concrete.order, concrete.variant, self.prediction)
        out = [self]
        for order, variant, prediction in product(sorted({concrete.order, 2, 3}), ("bh1", "bh2"), PREDICTIONS):
            if (order, variant, prediction) != own:
                out.append(UniPC(order, variant, prediction, self.lower_order_final, grid=self.grid_name, rho=self.rho))
        return out

    @staticmethod
    def resolved_variant(steps: int) -> str:
        """What ``variant="auto"`` means for a run of ``steps`` steps."""
        return "bh1" if steps < FEW_STEPS else "bh2"

    def step(self, x: Tensor, i: int, ctx: StepContext) -> Tensor:
        if self.order == "auto":  # the concrete solver for this run's step count
            solver = ctx.memory.get("resolved") or ctx.memory.setdefault("resolved", self.resolved(len(ctx.coeffs.dt)))
            return solver.step(x, i, ctx)
        a, b = self.node(ctx, i), self.node(ctx, i + 1)
        history: list[tuple[Node, Tensor]] = ctx.memory.setdefault("history", [])
        if i == 0:
            history.append((a, self.model(ctx, x, a)))
        n = len(ctx.coeffs.dt)
        order = min(self.order, i + 1)
        if self.lower_order_final:
            order = min(order, n - i)
        tr = self.transfer(a, b)
        h = b.lam - a.lam
        b_h = self.b_of_h(tr.hh, n)
        m0 = history[-1][1]
        prev = history[-order:-1][::-1]  # M_{-1}, M_{-2}, ... (most recent first)
        rks = [(node.lam - a.lam) / h for node, _ in prev]
        ds = [(m - m0) / r for (_, m), r in zip(prev, rks, strict=True)]
        x_lin = tr.L * x - (tr.C * math.expm1(tr.hh)) * m0
        x_pred = x_lin
        if ds:
            a_p = [0.5] if order == 2 else unipc_weights(rks, tr, b_h)
            x_pred = x_lin - (tr.C * b_h) * sum(w * d for w, d in zip(a_p, ds, strict=True))
        if i == n - 1:  # no corrector after the last step
            return x_pred
        m1 = self.model(ctx, x_pred, b)
        history.append((b, m1))
        del history[: -self.order]
        a_c = [0.5] if order == 1 else unipc_weights([*rks, 1.0], tr, b_h)
        residual = a_c[-1] * (m1 - m0)
        for w, d in zip(a_c[:-1], ds, strict=True):
            residual = residual + w * d
        return x_lin - (tr.C * b_h) * residual

    def describe(self) -> dict[str, Any]:
        return super().describe() | {
            "order": self.order,
            "variant": self.variant,
            "lower_order_final": self.lower_order_final,
        }
