"""Time schedules optimised for the model at hand: the grid (and the solver's variant) on which one solver, at one
budget, best reproduces the model's own probability-flow ODE.

:func:`optimize_schedule` works in four stages, all on a batch of *pilot* starts x_T drawn from the prior:

1. **Teacher.** A high-accuracy solve of the model's probability-flow ODE (UniPC-3, B(h) = e^h - 1, on a grid
   ``teacher_refine`` times finer than a *fine grid* of ``fine`` intervals uniform in lambda = -log sigma) gives
   the teacher states x*_k at every fine-grid time and the endpoint x*(eps). Its own score evaluations at the fine
   times (at its predictor's state, within a corrector of x*_k) are kept for stage 2, which costs nothing more.
2. **Dynamic programming over the fine grid** (GITS, Chen et al. 2024, "On the Trajectory Regularity of ODE-based
   Diffusion Sampling", Alg. 1): the cost of a jump from fine time j to k is the mean squared error of one first-order
   exponential step (DDIM in data or noise prediction) from the teacher at j, against x*_k, carried to the end by
   the ratio of the population's spreads std(x*(eps)) / std(x*_k) (a linearised, isotropic error transport: without it
   VE errors at sigma ~ 50 would dominate). The cheapest path of exactly N jumps from T to eps is a start grid.
3. **Candidates.** The solver's *variants* (:meth:`Solver.variants`, the options that change its accuracy and not
   its cost: for UniPC each prediction, B(h) and order 2 or 3; for multistep DPM-Solver each prediction, order 2 or
   3 and with or without lower-order final steps; ``variants=False``: the solver as given) on each start grid (the
   dynamic programmes', the variant's default and the published grids of :data:`STARTS`), scored by running them,
   so multistep history, order switching and correctors are all in the objective: the mean squared endpoint error
   against the teacher.
4. **Search** (:mod:`.schedule_search`): successive halving picks the best candidate on every pilot; compass
   search moves the interior times of its grid (in lambda) on the first half of the pilots while their error
   falls; the second half of the pilots then chooses between the descent's grid and its start, so a grid fitted
   to a few pilots (a mixture's mode boundaries) does not replace a better one.

The pilot cost (score evaluations summed over pilot samples, and batched calls) is reported in the returned
:class:`~.schedule_file.Schedule` and never exceeds ``budget`` (default a tenth of the evaluations of a
50,000-sample run at that budget, 5,000 nfe): the teacher costs P fine teacher_refine evaluations, the halving
about P nfe each round (ceil(log_4 candidates) rounds), and the descent runs (P / 2 nfe each) while the rest
lasts, the check's runs kept back.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

from ..sde import SDE, ScoreFn
from . import grids
from .base import CountingScore, Solver, integrate
from .schedule_file import Schedule, solver_name
from .schedule_search import Pilots, halving_runs, search
from .unipc import UniPC

STARTS = ("log_snr", "karras", "quadratic", "uniform", "logistic")
"""The published grids every variant is also tried on, beside the dynamic programme's and its own default."""
RUN_EVALUATIONS = 50_000
"""``budget`` defaults to a tenth of the score evaluations of a run of this many samples (an FID run's)."""


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


def first_order_costs(sde: SDE, xs: Tensor, evals: list[tuple[Tensor, Tensor]], times: Tensor, prediction: str
                      ) -> Tensor:  # fmt: skip
    """cost[j, k]: squared error of one DDIM step (x0 or eps prediction) from the teacher at j to x*_k, carried to eps.

    Args:
        xs: Teacher states at the fine times, (M + 1, P, *event_shape).
        evals: (x, score(x, t_j)) where the teacher evaluated the score at fine time j, j = 0..M-1.
        times: The fine times, (M + 1,).
        prediction: "data" or "noise".
    """
    m, s = sde.mean_scale(times), sde.std(times)
    spread = xs.flatten(2).std(dim=(1, 2))  # population spread per fine time
    weight = (spread[-1] / spread).square()
    n = len(times)
    cost = torch.full((n, n), math.inf, dtype=torch.float64)
    for j, (x, sc) in enumerate(evals):
        out = (x + s[j] ** 2 * sc) / m[j] if prediction == "data" else -s[j] * sc
        k = torch.arange(j + 1, n)
        if prediction == "data":  # x_k = (s_k / s_j) x_j + m_k (1 - s_k m_j / (s_j m_k)) x0
            lin, coef = s[k] / s[j], m[k] * (1 - (s[k] * m[j]) / (s[j] * m[k]))
        else:  # x_k = (m_k / m_j) x_j - s_k (e^{h} - 1) eps, e^h = (m_k s_j) / (m_j s_k)
            lin, coef = m[k] / m[j], -s[k] * ((m[k] * s[j]) / (m[j] * s[k]) - 1)
        shape = (-1,) + (1,) * x.ndim
        pred = lin.view(shape).to(x.dtype) * x + coef.view(shape).to(x.dtype) * out
        err = (pred - xs[k]).flatten(2).square().sum(2).mean(1).double()
        cost[j, k] = err * weight[k]
    return cost


def teacher(sde: SDE, score: CountingScore, x_T: Tensor, fine: Tensor, refine: int) -> tuple[Tensor, list]:
    """The high-accuracy solve: states at the fine times, (M + 1, P, *event_shape), and its score evaluations
    (x, score) at fine times 0..M-1 (UniPC evaluates at its predictor's state, within the corrector of the state)."""
    lam = times_to_lam(sde, fine)
    dense = torch.cat([torch.linspace(0, 1, refine + 1, dtype=torch.float64)[:-1] * (b - a) + a
                       for a, b in zip(lam[:-1], lam[1:], strict=True)] + [lam[-1:]])  # fmt: skip
    seen: list[tuple[Tensor, Tensor]] = []

    def recording(x: Tensor, t: Tensor) -> Tensor:
        out = score(x, t)
        seen.append((x, out) if len(seen) % refine == 0 else None)  # every refine-th evaluation is at a fine time
        return out

    solver = UniPC(order=3, variant="bh2", prediction="data", lower_order_final=True)
    _, traj = integrate(solver, sde, CountingScore(recording), x_T, lam_to_times(sde, dense, float(fine[-1])),
                        trajectory=True)  # fmt: skip
    evals = seen[::refine]
    assert len(evals) == len(fine) - 1, (len(seen), len(fine))  # UniPC evaluates at every node but the last
    return traj[::refine], evals


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
    sweeps: int = 8,
    variants: bool = True,
    budget: int | None = None,
    generator: torch.Generator | None = None,
    device: torch.device | str | None = None,
    dtype: torch.dtype = torch.float64,
) -> Schedule:
    """The time grid (and variant of ``solver``) with which ``nfe`` score evaluations best follow the model's ODE.

    Args:
        sde: The forward SDE the score belongs to.
        score_fn: ``score_fn(x, t)`` of the model, x of shape (P, *event_shape), t of shape (P,).
        shape: (P, *event_shape): P >= 2 pilot starts x_T are drawn from the SDE's prior; the first half fits the
            grid, the second half checks it.
        solver: A deterministic fixed-grid solver (UniPC, DPMSolver, DDIM with eta = 0, EDMHeun, ODE): its name in
            ``SOLVERS`` (default options) or the configured object.
        nfe: The budget the schedule is for; its grid has as many intervals as ``solver.plan(nfe=nfe)``.
        eps: End time of the solve.
        fine: Intervals of the fine lambda-uniform grid the dynamic programme chooses from (>= the steps).
        teacher_refine: Teacher steps per fine interval.
        sweeps: At most this many compass-search sweeps over the interior times (0: no descent).
        variants: Also choose between the solver's variants (:meth:`Solver.variants`); the chosen one's options are
            ``Schedule.options`` and :meth:`Schedule.solver_for` builds it.
        budget: Most score evaluations to spend, summed over pilots; default ``RUN_EVALUATIONS // 10 * nfe``.
        generator: Source of the pilot starts.
        device, dtype: Where and in which precision the pilots are solved.

    Returns:
        A :class:`~.schedule_file.Schedule`: ``times`` (N + 1,) float64, T to eps, the solver options they are for,
        and the pilot cost and errors.

    Raises:
        ValueError: for a stochastic or adaptive solver, bad settings, or a budget below the teacher's and the
            search's fixed costs.
    """
    if isinstance(solver, str):  # a name in SOLVERS, with its default options (as scoresde.sample takes it)
        from . import SOLVERS

        if solver not in SOLVERS:
            raise ValueError(f"solver must be one of {sorted(SOLVERS)} or a Solver object, got {solver!r}")
        solver = SOLVERS[solver]()
    if not isinstance(solver, Solver):
        raise TypeError(f"solver must be a solver name or a Solver object, got {type(solver).__name__}")
    check_deterministic(solver)
    default = solver.plan(sde, eps, nfe=nfe)
    steps = len(default) - 1
    for name, value, low in (("fine", fine, steps), ("teacher_refine", teacher_refine, 1), ("sweeps", sweeps, 0)):
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ValueError(f"{name} must be an integer >= {low}, got {value!r}")
    if not isinstance(variants, bool):
        raise TypeError(f"variants must be a bool, got {type(variants).__name__}")
    if shape[0] < 2:
        raise ValueError(f"shape[0] (the number of pilots) must be >= 2: half fit, half check, got {shape[0]}")
    pilots_n, half = int(shape[0]), int(shape[0]) // 2
    budget = RUN_EVALUATIONS // 10 * nfe if budget is None else budget
    options = solver.variants(steps) if variants else [solver]
    predictions = sorted({getattr(v, "prediction", "data") for v in options})
    most = len(options) * (len(predictions) + 1 + len(STARTS))  # candidates: at most every variant on every start
    teach = pilots_n * fine * teacher_refine
    fixed = teach + (halving_runs(most, pilots_n) + 2 * (pilots_n - half)) * nfe
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < fixed:
        raise ValueError(
            f"budget must be an integer >= {fixed} (the teacher's {teach} score evaluations and {fixed - teach} for "
            f"the search at {pilots_n} pilots and nfe={nfe}), got {budget!r}; lower the pilots, fine or "
            "teacher_refine, or pass variants=False"
        )
    score = CountingScore(score_fn)  # its rows: score evaluations summed over pilots
    with torch.no_grad():
        x_T = sde.prior_sampling(tuple(shape), generator=generator, device=device, dtype=dtype)
        lam_ends = times_to_lam(sde, torch.tensor([sde.T, eps], dtype=torch.float64))
        fine_t = lam_to_times(sde, torch.linspace(float(lam_ends[0]), float(lam_ends[1]), fine + 1).double(), eps)
        xs, evals = teacher(sde, score, x_T, fine_t, teacher_refine)
        pilots = Pilots(sde, score, x_T, xs[-1], nfe, budget)
        shared = {f"dp_{p}": fine_t[dp_path(first_order_costs(sde, xs, evals, fine_t, p), steps)] for p in predictions}
        shared |= {name: grids.make(name, sde, steps, eps) for name in STARTS}
        candidates = {}
        for i, variant in enumerate(options):
            starts = {"default": variant.plan(sde, eps, nfe=nfe)} | shared
            seen: list[Tensor] = []
            for name, times in starts.items():
                if not any(torch.equal(times, other) for other in seen):  # e.g. UniPC's default is "logistic"
                    seen.append(times)
                    candidates[(i, name)] = (variant, times)
        found = search(pilots, candidates, half, sweeps, lambda lam: lam_to_times(sde, lam, eps),
                       lambda t: times_to_lam(sde, t))  # fmt: skip
        default_error = pilots.mean((0, "default"), solver, default, torch.arange(half, pilots_n))
        assert score.rows <= budget, (score.rows, budget)
    return Schedule(
        times=found.times,
        solver=solver_name(solver),
        options=found.solver.describe(),
        nfe=nfe,
        eps=float(eps),
        pilots=pilots_n,
        pilot_evaluations=score.rows,
        pilot_calls=score.calls,
        pilot_error=found.check_error,
        default_error=default_error,
        start=found.start,
        requested=solver.describe(),
        extra={"chosen": found.chosen, "candidates": len(candidates), "budget": budget, **found.details},
    )
