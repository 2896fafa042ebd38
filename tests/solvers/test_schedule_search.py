"""The search inside ``optimize_schedule``: solver variants, successive halving, compass search and the budget."""

import math

import pytest
import torch

import scoresde
from scoresde.oracle import anisotropic_gaussian
from scoresde.solvers import DDIM, DPMSolver, DPMSolver2, EDMHeun, UniPC
from scoresde.solvers.base import CountingScore
from scoresde.solvers.schedule import optimize_schedule
from scoresde.solvers.schedule_search import Pilots, descend, halving, halving_runs

EPS = 1e-3


def _behaviour(solver, steps):
    """What decides a variant's steps: (class, order, B(h) as run, prediction, method)."""
    variant = getattr(solver, "variant", None)
    if variant == "auto":
        variant = UniPC.resolved_variant(steps)
    return (type(solver), getattr(solver, "order", None), variant, getattr(solver, "prediction", None),
            getattr(solver, "method", None))  # fmt: skip


@pytest.mark.parametrize("steps", [5, 20])
def test_unipc_variants_are_every_prediction_b_of_h_and_order_once(steps):
    variants = UniPC().variants(steps)
    assert variants[0].describe() == UniPC().describe()  # the solver asked for comes first
    behaviours = [_behaviour(v, steps) for v in variants]
    assert len(variants) == 8 and len(set(behaviours)) == 8  # "auto" is not run twice
    assert {(o, v, p) for _, o, v, p, _ in behaviours} == {
        (o, v, p) for o in (2, 3) for v in ("bh1", "bh2") for p in ("data", "noise")
    }
    assert all(v.lower_order_final for v in variants)


def test_dpm_solver_variants():
    multistep = DPMSolver().variants(10)
    assert multistep[0].describe() == DPMSolver().describe()
    options = [(v.order, v.prediction, v.lower_order_final) for v in multistep]
    assert len(options) == 8 and set(options) == {
        (o, p, f) for o in (2, 3) for p in ("data", "noise") for f in (False, True)
    }
    single = DPMSolver(order=3, method="singlestep").variants(4)
    assert [(v.order, v.prediction) for v in single] == [(3, "noise"), (3, "data")]
    for solver in (DPMSolver2(), DDIM(), EDMHeun()):
        assert solver.variants(10) == [solver]


@pytest.mark.parametrize("solver", [UniPC(), DPMSolver(), DPMSolver(order=3, method="singlestep")])
def test_variants_cost_what_the_solver_costs(solver):
    sde, data = scoresde.VPSDE(), anisotropic_gaussian(3, seed=0)
    nfe = 9
    steps = len(solver.plan(sde, EPS, nfe=nfe)) - 1
    spent = set()
    for variant in solver.variants(steps):
        assert len(variant.plan(sde, EPS, nfe=nfe)) == steps + 1
        _, info = scoresde.sample(sde, data.score_fn(sde), (4, 3), solver=variant, nfe=nfe, denoise=False)
        spent.add(info.nfe)
    assert spent == {nfe}


@pytest.mark.parametrize("sde", [scoresde.VPSDE(), scoresde.VESDE(sigma_min=0.01, sigma_max=5.0)], ids=["vp", "ve"])
def test_the_search_switches_dpm_solver_to_data_prediction_where_that_is_better(sde):
    """At 5 NFE on a 16-D Gaussian DPM-Solver++ (data prediction) beats the default noise prediction on the grids
    tried: with variants the schedule is for DPM-Solver++, and more accurate on starts it never saw than the
    solver as given on its default grid."""
    data = anisotropic_gaussian(16, min_std=0.02, max_std=2.0, seed=3)
    gen = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    found = optimize_schedule(sde, data.score_fn(sde), (32, 16), solver=DPMSolver(), nfe=5, generator=gen())
    kept = optimize_schedule(sde, data.score_fn(sde), (32, 16), solver=DPMSolver(), nfe=5, variants=False,
                             generator=gen())  # fmt: skip
    assert found.options["prediction"] == "data" and found.requested["prediction"] == "noise"
    assert kept.options == kept.requested == DPMSolver().describe()
    solver = found.solver_for(DPMSolver())
    assert isinstance(solver, DPMSolver) and solver.describe() == found.options
    x_T = sde.prior_sampling((400, 16), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    exact = data.flow(sde, x_T, sde.T, EPS)
    run = lambda s, t: scoresde.sample(sde, data.score_fn(sde), None, start=x_T, solver=s, nfe=5, denoise=False,  # noqa: E731
                                       times=t)[0]  # fmt: skip
    err = lambda x: float((x - exact).square().sum(1).mean())  # noqa: E731
    assert err(run(solver, found.times)) < 0.5 * err(run(DPMSolver(), None))
    assert err(run(DPMSolver(), kept.times)) < err(run(DPMSolver(), None))


def test_solver_for_refuses_a_solver_the_schedule_is_not_a_variant_of():
    sde, data = scoresde.VPSDE(), anisotropic_gaussian(2, seed=0)
    schedule = optimize_schedule(sde, data.score_fn(sde), (8, 2), solver=UniPC(), nfe=5, fine=16, sweeps=0,
                                 generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert schedule.solver_for(UniPC()).describe() == schedule.options == schedule.solver_for("unipc").describe()
    with pytest.raises(ValueError, match="not a variant"):
        schedule.solver_for(DPMSolver())


@pytest.mark.parametrize("nfe", [4, 8])
def test_the_search_never_spends_more_than_its_budget(nfe):
    sde, data = scoresde.VESDE(sigma_min=0.01, sigma_max=5.0), anisotropic_gaussian(4, seed=1)
    calls = []
    score = data.score_fn(sde)
    counted = lambda x, t: calls.append(x.shape[0]) or score(x, t)  # noqa: E731
    schedule = optimize_schedule(sde, counted, (32, 4), solver=UniPC(), nfe=nfe, fine=32, sweeps=50,
                                 generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert sum(calls) == schedule.pilot_evaluations <= 5_000 * nfe == schedule.extra["budget"]
    tight = 32 * 32 * 3 + (halving_runs(8 * 8, 32) + 2 * 16) * nfe + 9 * 16 * nfe  # room for a few descent runs
    calls.clear()
    schedule = optimize_schedule(sde, counted, (32, 4), solver=UniPC(), nfe=nfe, fine=32, sweeps=50, budget=tight,
                                 generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert sum(calls) <= tight and tight - sum(calls) < 4 * 16 * nfe  # each descent stopped when a run did not fit
    for bad in (32 * 32 * 3, True, 1e9):
        with pytest.raises(ValueError, match="budget must be an integer >= "):
            optimize_schedule(sde, score, (32, 4), solver=UniPC(), nfe=nfe, fine=32, budget=bad)
    with pytest.raises(TypeError, match="variants must be a bool"):
        optimize_schedule(sde, score, (32, 4), solver=UniPC(), nfe=nfe, variants="yes")


class _Arms:
    """A stand-in for the pilots: candidate k's error on pilot i is mu_k + noise_i, and pilot runs are counted."""

    def __init__(self, means, noise):
        self.means, self.noise, self.runs, self.seen = means, noise, 0, {}

    def mean(self, key, solver, times, rows):
        have = self.seen.setdefault(key, set())
        self.runs += len(set(rows.tolist()) - have)
        have |= set(rows.tolist())
        return float(self.means[key] + self.noise[rows].mean())


def test_halving_keeps_the_best_arm_and_spends_what_it_says():
    means = {k: 1.0 + 0.1 * k for k in range(40)}
    means[17] = 0.5
    arms = _Arms(means, torch.rand(64, generator=torch.Generator().manual_seed(0), dtype=torch.float64))
    ranked = halving(arms, {k: (None, None) for k in means}, torch.arange(64))
    assert ranked[0][1] == 17 and len(ranked) == 3  # 40 -> 10 -> 3 candidates on 4 -> 16 -> 64 pilots
    assert arms.runs == halving_runs(40, 64) == 40 * 4 + 10 * 12 + 3 * 48


def test_compass_search_finds_the_minimum_of_a_quadratic():
    target = torch.tensor([0.0, 0.3, 0.35, 2.0, 2.5, 4.0], dtype=torch.float64)
    objective = lambda lam: float((lam - target).square().sum())  # noqa: E731
    start = torch.linspace(0.0, 4.0, 6, dtype=torch.float64)
    lam, best = descend(objective, start, objective(start), sweeps=100, can_afford=lambda: True, tol=1e-6)
    assert best < 1e-8 and torch.equal(lam[[0, -1]], start[[0, -1]])
    assert bool((lam.diff() > 0).all())
    calls = []
    descend(lambda lam: calls.append(1) or objective(lam), start, objective(start), sweeps=100,
            can_afford=lambda: len(calls) < 7)  # fmt: skip
    assert len(calls) == 7  # stops as soon as a run is not affordable


def test_a_candidate_that_diverges_loses_and_the_search_goes_on():
    sde, data = scoresde.VPSDE(), anisotropic_gaussian(2, seed=0)
    score = data.score_fn(sde)
    broken = lambda x, t: score(x, t) * (torch.inf if float(t[0]) == 0.5 else 1.0)  # noqa: E731
    x_T = sde.prior_sampling((4, 2), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    pilots = Pilots(sde, CountingScore(broken), x_T, torch.zeros_like(x_T), 3, 10**6)
    bad = torch.tensor([1.0, 0.5, 0.1, EPS], dtype=torch.float64)
    good = torch.tensor([1.0, 0.6, 0.1, EPS], dtype=torch.float64)
    assert pilots.mean("bad", UniPC(), bad, torch.arange(4)) == math.inf
    assert math.isfinite(pilots.mean("good", UniPC(), good, torch.arange(4)))
