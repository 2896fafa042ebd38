"""Time schedules optimised for the model at hand: the grid on which one solver, at one budget, best reproduces the
model's own probability-flow ODE.

:func:`optimize_schedule` works in three stages, all on a batch of *pilot* starts x_T drawn from the prior:

1. **Teacher.** A high-accuracy solve of the model's probability-flow ODE (UniPC-3, B(h) = e^h - 1, on a grid
   ``teacher_refine`` times finer than a *fine grid* of ``fine`` intervals uniform in lambda = -log sigma) gives
   the teacher states x*_k at every fine-grid time and the endpoint x*(eps).
2. **Dynamic programming over the fine grid** (GITS, Chen et al. 2024, "On the Trajectory Regularity of ODE-based
   Diffusion Sampling", Alg. 1): the cost of a jump from fine time j to k is the mean squared error of one first-order
   exponential step (DDIM in the solver's prediction) from the teacher state x*_j, against x*_k, carried to the end by
   the ratio of the population's spreads std(x*(eps)) / std(x*_k) (a linearised, isotropic error transport: without it
   VE errors at sigma ~ 50 would dominate). The cheapest path of exactly N jumps from T to eps is the start.
3. **Coordinate descent on the solver's own endpoint error**, on the first half of the pilots (the *fit* half). The
   dynamic programme's grid, the solver's default grid and the published grids of :data:`STARTS` (log-SNR, Karras
   rho = 7, time-quadratic, time-uniform, logistic) are scored by running the solver itself; from the best, every
   interior time is moved in lambda towards each neighbour by a fraction (1/2, then 1/4, ...) while that lowers the
   mean squared endpoint error against the teacher. Multistep history, order switching and correctors are all in
   the objective, so the result is tuned to this solver and budget.
4. **Check.** On the second half of the pilots the descent's grid, its start and the solver's default grid are
   scored once more and the best is returned, so a grid fitted to a few pilots (a mixture's mode boundaries) does
   not replace a better default.

The pilot cost (score evaluations summed over pilot samples, and batched calls) is reported in the returned
:class:`~.schedule_file.Schedule`. With 64 pilots and the defaults (64 fine intervals, refine 3, 3 sweeps) it is
about 64 * 257 + 32 * (7 + 6 (N - 1)) N + 32 * 3 N sample evaluations (less where the descent stops early); measured
on the held-out problem families of benchmarks/fast_solvers.py: 22,600-24,100 at 6 NFE, 33,100-36,900 at 10 and
84,300-95,800 at 20, below a tenth of a 50,000-sample run's (30,000, 50,000 and 100,000).
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor

from ..sde import SDE, ScoreFn
from . import grids
from .base import CountingScore, Solver, integrate
from .schedule_file import Schedule, solver_name
from .unipc import UniPC

STARTS = ("log_snr", "karras", "quadratic", "uniform", "logistic")
"""The published grids the descent may also start from (whichever of them, the dynamic programme's grid and the
solver's default has the least pilot error)."""


def lam_to_times(sde: SDE, lam: Tensor, eps: float) -> Tensor:
    """Times of the log-SNRs ``lam`` (decreasing times for increasing lambda), ends pinned to T and eps."""
    t = sde.t_from_sigma((-lam).exp()).clamp(eps, sde.T)
    t[0], t[-1] = sde.T, eps
    return t


def times_to_lam(sde: SDE, times: Tensor) -> Tensor:
    """lambda = -log sigma(t) of grid times, float64."""
    return -sde.sigma(times.to(torch.float64)).log()


def check_deterministic(solver: Solver) -> None:
    """Refuse solvers whose endpoint is not a function of x_T: the objective is a flow-map error."""
    from .ddim import DDIM
    from .dpm_solver import DPMSolver
    from .edm import EDMHeun
    from .ode import ProbabilityFlowODE

    ok = isinstance(solver, (UniPC, DPMSolver, EDMHeun, ProbabilityFlowODE)) or (
        isinstance(solver, DDIM) and getattr(solver, "eta", 0.0) == 0.0
    )
    if not ok or solver.adaptive:
        raise ValueError(
            f"solver must be a deterministic fixed-grid solver (unipc, dpm_solver, dpm_solver2, dpm_solver3, ddim with "
            f"eta=0, edm_heun, ode with a fixed-step method), got {solver!r}; a stochastic sampler can walk a schedule "
            "optimised for its deterministic counterpart through sample(..., times=...)"
        )


def dp_path(cost: Tensor, steps: int) -> list[int]:
    """The path 0 = k_0 < k_1 < ... < k_steps = M through a cost matrix with the least total cost (GITS, Alg. 1).

    Args:
        cost: (M + 1, M + 1) tensor; cost[j, k] for j < k is the cost of a jump from fine point j to k.
        steps: Number of jumps N, 1 <= N <= M.

    Returns:
        The N + 1 fine-grid indices of the cheapest path.
    """
    m = cost.shape[0] - 1
    if not 1 <= steps <= m:
        raise ValueError(f"steps must lie in [1, {m}] for a fine grid of {m} intervals, got {steps}")
    inf = torch.tensor(math.inf, dtype=torch.float64)
    upper = torch.triu(torch.ones(m + 1, m + 1, dtype=torch.bool), diagonal=1)
    c = torch.where(upper, cost.to(torch.float64), inf)
    best = torch.full((m + 1,), math.inf, dtype=torch.float64)
    best[0] = 0.0
    parents = []
    for _ in range(steps):  # best[k] after n rounds: least cost of reaching k in exactly n jumps
        total = best[:, None] + c
        best, parent = total.min(0)
        parents.append(parent)
    path = [m]
    for parent in reversed(parents):
        path.append(int(parent[path[-1]]))
    return path[::-1]


def _first_order_costs(sde: SDE, score: CountingScore, xs: Tensor, times: Tensor, prediction: str) -> Tensor:
    """cost[j, k]: squared error of one DDIM step (x0 or eps prediction) from teacher state j to k, carried to eps."""
    m, s = sde.mean_scale(times), sde.std(times)
    batch = xs.shape[1]
    outs = []
    for j in range(len(times)):  # the model output at every teacher state: one batched call per fine point
        sc = score(xs[j], times[j].expand(batch).to(xs.dtype))
        outs.append((xs[j] + s[j] ** 2 * sc) / m[j] if prediction == "data" else -s[j] * sc)
    spread = xs.flatten(2).std(dim=(1, 2))  # population spread per fine time
    weight = (spread[-1] / spread).square()
    n = len(times)
    cost = torch.full((n, n), math.inf, dtype=torch.float64)
    for j in range(n - 1):
        k = torch.arange(j + 1, n)
        if prediction == "data":  # x_k = (s_k / s_j) x_j + m_k (1 - s_k m_j / (s_j m_k)) x0
            lin, coef = s[k] / s[j], m[k] * (1 - (s[k] * m[j]) / (s[j] * m[k]))
        else:  # x_k = (m_k / m_j) x_j - s_k (e^{h} - 1) eps, e^h = (m_k s_j) / (m_j s_k)
            lin, coef = m[k] / m[j], -s[k] * ((m[k] * s[j]) / (m[j] * s[k]) - 1)
        shape = (-1,) + (1,) * xs[j].ndim
        pred = lin.view(shape).to(xs.dtype) * xs[j] + coef.view(shape).to(xs.dtype) * outs[j]
        err = (pred - xs[k]).flatten(2).square().sum(2).mean(1).double()
        cost[j, k] = err * weight[k]
    return cost


def _teacher(sde: SDE, score: CountingScore, x_T: Tensor, fine: Tensor, refine: int) -> Tensor:
    """States of the high-accuracy solve at the fine-grid times, shape (M + 1, P, *event_shape)."""
    lam = times_to_lam(sde, fine)
    dense = torch.cat([torch.linspace(0, 1, refine + 1, dtype=torch.float64)[:-1] * (b - a) + a
                       for a, b in zip(lam[:-1], lam[1:], strict=True)] + [lam[-1:]])  # fmt: skip
    teacher = UniPC(order=3, variant="bh2", prediction="data", lower_order_final=True)
    _, traj = integrate(teacher, sde, score, x_T, lam_to_times(sde, dense, float(fine[-1])), trajectory=True)
    return traj[::refine]


def optimize_schedule(
    sde: SDE,
    score_fn: ScoreFn,
    shape: tuple[int, ...],
    *,
    solver: str | Solver,
    nfe: int,
    eps: float = 1e-3,
    fine: int = 64,
    teacher_refine: int = 3,
    sweeps: int = 3,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
) -> Schedule:
    """The time grid on which ``solver`` with ``nfe`` score evaluations best follows the model's own ODE.

    Args:
        sde: The forward SDE the score belongs to.
        score_fn: ``score_fn(x, t)`` of the model, x of shape (P, *event_shape), t of shape (P,).
        shape: (P, *event_shape): P >= 2 pilot starts x_T are drawn from the SDE's prior; the first half fits the
            grid, the second half checks it (the descent's result, its start or the default grid, whichever is best
            there, is returned).
        solver: A deterministic fixed-grid solver (UniPC, DPMSolver, DDIM with eta = 0, EDMHeun, ODE): its name in
            ``SOLVERS`` (default options) or the configured object.
        nfe: The budget the schedule is for; its grid has as many intervals as ``solver.plan(nfe=nfe)``.
        eps: End time of the solve.
        fine: Intervals of the fine lambda-uniform grid the dynamic programme chooses from (>= the steps).
        teacher_refine: Teacher steps per fine interval.
        sweeps: Coordinate-descent sweeps over the interior times (0: the dynamic programme's grid only).
        generator: Source of the pilot starts.
        device, dtype: Where and in which precision the pilots are solved.

    Returns:
        A :class:`~.schedule_file.Schedule`: ``times`` (N + 1,) float64, T to eps, and the pilot cost and errors.
    """
    if isinstance(solver, str):  # a name in SOLVERS, with its default options (as scoresde.sample takes it)
        from . import SOLVERS

        if solver not in SOLVERS:
            raise ValueError(f"solver must be one of {sorted(SOLVERS)} or a Solver object, got {solver!r}")
        solver = SOLVERS[solver]()
    if not isinstance(solver, Solver):
        raise TypeError(f"solver must be a solver name or a Solver object, got {type(solver).__name__}")
    check_deterministic(solver)
    steps = len(solver.plan(sde, eps, nfe=nfe)) - 1
    for name, value, low in (("fine", fine, steps), ("teacher_refine", teacher_refine, 1), ("sweeps", sweeps, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if shape[0] < 2:
        raise ValueError(f"shape[0] (the number of pilots) must be >= 2: half fit, half check, got {shape[0]}")
    score = CountingScore(score_fn)
    with torch.no_grad():
        x_T = sde.prior_sampling(tuple(shape), generator=generator, device=device, dtype=dtype)
        lam_ends = times_to_lam(sde, torch.tensor([sde.T, eps], dtype=torch.float64))
        fine_t = lam_to_times(sde, torch.linspace(float(lam_ends[0]), float(lam_ends[1]), fine + 1).double(), eps)
        xs = _teacher(sde, score, x_T, fine_t, teacher_refine)
        prediction = getattr(solver, "prediction", "data")
        path = dp_path(_first_order_costs(sde, score, xs, fine_t, prediction), steps)
        half = shape[0] // 2

        def objective(times: Tensor, rows: slice = slice(0, half)) -> float:
            out, _ = integrate(solver, sde, score, x_T[rows], times, nfe_budget=nfe)
            return float((out - xs[-1][rows]).flatten(1).square().sum(1).mean())

        starts = {"dp": fine_t[path], "default": solver.plan(sde, eps, nfe=nfe)}
        starts |= {name: grids.make(name, sde, steps, eps) for name in STARTS}
        errors = {name: objective(t) for name, t in starts.items()}
        first = min(errors, key=errors.get)
        lam, _ = _descend(lambda lm: objective(lam_to_times(sde, lm, eps)), times_to_lam(sde, starts[first]),
                          errors[first], sweeps)  # fmt: skip
        # the check half decides between the descent, its start and the default (guards against fitting the pilots)
        finalists = {"descent": lam_to_times(sde, lam, eps), first: starts[first], "default": starts["default"]}
        checked = {name: objective(t, slice(half, None)) for name, t in finalists.items()}
        chosen = min(checked, key=checked.get)
    return Schedule(
        times=finalists[chosen],
        solver=solver_name(solver),
        options=solver.describe(),
        nfe=nfe,
        eps=float(eps),
        pilots=int(shape[0]),
        pilot_evaluations=score.rows,
        pilot_calls=score.calls,
        pilot_error=checked[chosen],
        default_error=checked["default"],
        start=first if chosen == "descent" else chosen,
    )


def _descend(objective: Callable[[Tensor], float], lam: Tensor, best: float, sweeps: int) -> tuple[Tensor, float]:
    """Coordinate descent: move each interior lambda_k by ``frac`` of the gap to a neighbour while it helps."""
    frac = 0.5
    for _ in range(sweeps):
        improved = False
        for k in range(1, len(lam) - 1):
            for nb in (k - 1, k + 1):
                cand = lam.clone()
                cand[k] = lam[k] + frac * (lam[nb] - lam[k])
                err = objective(cand)
                if err < best:
                    lam, best, improved = cand, err, True
                    break
        if not improved:
            frac /= 2
    return lam, best
