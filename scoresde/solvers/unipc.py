"""UniPC (Zhao et al. 2023): a multistep predictor (UniP) and a corrector (UniC) that reuses the next step's model
evaluation, so the corrector raises the order by one at no extra score evaluation.

In the notation of :mod:`.exponential`, a step from t_{i} (node 0) to t_{i+1} with h = lambda_{i+1} - lambda_i
uses the previous model outputs M_{-k} at r_k = (lambda_{-k} - lambda_0) / h and D_k = (M_{-k} - M_0) / r_k:

    UniP-p:  x~_{i+1} = L x_i - C g1(hh) M_0 - C B(h) sum_{k<p} a_k D_k                  (their eq. 8 / Alg. 2)
    UniC-p:  x_{i+1}  = L x_i - C g1(hh) M_0 - C B(h) (sum_{k<p} a^c_k D_k + a^c_p (M~_{i+1} - M_0))

with M~_{i+1} = M(x~_{i+1}, t_{i+1}), which is also the model output the next step starts from. The weights solve
R a = b with R_{jk} = r_k^j and b_j = j! g_{j+1}(hh) / B(h) (their Theorem 3.1; r_p = 1 for the corrector);
order 2 predictors and order 1 correctors take their closed-form a = 1/2. B(h) = hh ("bh1") or e^hh - 1 ("bh2");
"auto" takes bh1 for runs below 15 steps.
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
FEW_STEPS = 15
"""Runs below this many steps take B(h) = h (``variant="auto"``) on the "logistic" grid (the default grid); longer
runs take B(h) = e^h - 1 on the log-SNR grid, the UniPC authors' recommended setting."""


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

    The defaults switch at 15 steps. From 15 they are the authors' advice for unconditional sampling of
    low-resolution models: order 3, data prediction, lower-order final steps, the log-SNR grid (their score_sde
    example, example/score_sde_pytorch) and B(h) = e^h - 1 (the docstring of their diffusers port,
    UniPCMultistepScheduler: "bh1 for unconditional sampling when steps < 10, and bh2 otherwise"), which the
    library then matches to round-off; on the 64-D oracle Gaussian only the log-SNR grid resolves every scale.
    Below 15 steps they keep B(h) = h on the "logistic" grid, which concentrates the steps near sigma = 1 and did
    better on the digits models. With the exact score noise prediction is often more accurate, but with a learned
    score it overshoots at 5-10 NFE, so data prediction is the default (the measurements: docs/guides/benchmarks.md).

    Args:
        order: Order p of the predictor, 1-3 (the corrector adds one).
        variant: "bh1" (B(h) = h), "bh2" (B(h) = e^h - 1) or "auto" (bh1 for runs below 15 steps, else bh2).
        prediction: "data" (their code's default) or "noise".
        lower_order_final: Lower the order of the last steps to the steps left (their code's default).
        grid: Where the steps fall, a name in ``grids.GRIDS``; None (default): "logistic" below 15 steps, else
            "log_snr" (uniform in lambda).
        rho: Exponent of the "karras" grid.
    """

    default_grid = "logistic below 15 steps, else log_snr"

    def __init__(
        self,
        order: int = 3,
        variant: str = "auto",
        prediction: str = "data",
        lower_order_final: bool = True,
        *,
        grid: str | None = None,
        rho: float = 7.0,
    ) -> None:
        super().__init__(prediction, grid=grid, rho=rho)
        if order not in (1, 2, 3) or isinstance(order, bool):
            raise ValueError(f"order must be 1, 2 or 3, got {order!r}")
        if variant not in VARIANTS:
            raise ValueError(f"variant must be one of {VARIANTS}, got {variant!r}")
        if not isinstance(lower_order_final, bool):
            raise TypeError(f"lower_order_final must be a bool, got {type(lower_order_final).__name__}")
        self.order, self.variant, self.lower_order_final = order, variant, lower_order_final

    def grid(self, sde: SDE, steps: int, eps: float) -> Tensor:
        """The ``grid`` option's grid; by default "logistic" for runs below 15 steps and "log_snr" from 15."""
        if self.grid_name is None:
            return grids.make("logistic" if steps < FEW_STEPS else "log_snr", sde, steps, eps)
        return super().grid(sde, steps, eps)

    def b_of_h(self, hh: float, steps: int) -> float:
        """B(h) of a run of ``steps`` steps: hh ("bh1") or e^hh - 1 ("bh2"); "auto" picks by the step count."""
        variant = self.variant if self.variant != "auto" else self.resolved_variant(steps)
        return hh if variant == "bh1" else math.expm1(hh)

    def variants(self, steps: int) -> list[UniPC]:
        """Itself, then UniPC of order 2 and 3 with each B(h) and each prediction (``lower_order_final`` and the
        grid option kept): the settings the published code offers, one evaluation per step for all of them."""
        own = (self.order, self.variant if self.variant != "auto" else self.resolved_variant(steps), self.prediction)
        out = [self]
        for order, variant, prediction in product(sorted({self.order, 2, 3}), ("bh1", "bh2"), PREDICTIONS):
            if (order, variant, prediction) != own:
                out.append(UniPC(order, variant, prediction, self.lower_order_final, grid=self.grid_name, rho=self.rho))
        return out

    @staticmethod
    def resolved_variant(steps: int) -> str:
        """What ``variant="auto"`` means for a run of ``steps`` steps."""
        return "bh1" if steps < FEW_STEPS else "bh2"

    def step(self, x: Tensor, i: int, ctx: StepContext) -> Tensor:
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
