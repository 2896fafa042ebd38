"""Schedules optimised for the model: the dynamic programme, the optimiser against the exact flow map on held-out
starts, the pilot cost, schedule files and ``sample(..., times=)``."""

import pytest
import torch

import scoresde
from scoresde.oracle import anisotropic_gaussian, eight_gaussians
from scoresde.solvers import DDIM, DPMSolver, EDMHeun, UniPC, grids
from scoresde.solvers.base import CountingScore
from scoresde.solvers.schedule import dp_path, first_order_costs, lam_to_times, optimize_schedule, teacher, times_to_lam
from scoresde.solvers.schedule_file import file_digest, load_schedule, save_schedule, schedule_path

EPS = 1e-3


def _held_out_error(sde, data, solver, nfe, times=None, n=400):
    """RMS endpoint error against the exact flow map from x_T draws the optimiser never saw (seed 1)."""
    x_T = sde.prior_sampling((n, data.dim), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    exact = data.flow(sde, x_T, sde.T, EPS)
    out, _ = scoresde.sample(sde, data.score_fn(sde), None, start=x_T, solver=solver, nfe=nfe, denoise=False,
                             times=times)  # fmt: skip
    return float((out - exact).square().sum(1).mean().sqrt())


def _optimise(sde, data, solver, nfe, **options):
    gen = torch.Generator().manual_seed(0)
    return optimize_schedule(sde, data.score_fn(sde), (64, data.dim), solver=solver, nfe=nfe, generator=gen, **options)


def test_dp_path_on_a_convex_cost_is_uniform():
    m = 12
    j = torch.arange(m + 1, dtype=torch.float64)
    cost = (j[None, :] - j[:, None]).square()  # sum of squared jump lengths: least with equal jumps
    assert dp_path(cost, 4) == [0, 3, 6, 9, 12]
    assert dp_path(cost, 1) == [0, 12]
    assert dp_path(cost, m) == list(range(m + 1))
    with pytest.raises(ValueError, match="steps must lie in"):
        dp_path(cost, m + 1)


def test_dp_path_avoids_an_expensive_region():
    m = 10
    j = torch.arange(m + 1, dtype=torch.float64)
    cost = (j[None, :] - j[:, None]).square()
    cost[:5, 6:] *= 100  # jumping across fine point 5 is dear: the path lands on it
    assert 5 in dp_path(cost, 2)


def test_lambda_and_time_maps_invert_each_other(sde):
    t = grids.uniform(sde, 7, EPS)
    torch.testing.assert_close(lam_to_times(sde, times_to_lam(sde, t), EPS), t)


@pytest.mark.parametrize("nfe", [5, 10, pytest.param(20, marks=pytest.mark.slow)])
@pytest.mark.parametrize("solver", [UniPC, DPMSolver], ids=["unipc", "dpm_solver"])
def test_optimised_schedule_beats_the_default_grid_on_held_out_starts(sde, solver, nfe):
    data = anisotropic_gaussian(16, min_std=0.05, max_std=1.0, seed=3)
    schedule = _optimise(sde, data, solver(), nfe)
    assert schedule.times.shape == (nfe + 1,)
    optimised, default = (
        _held_out_error(sde, data, schedule.solver_for(solver()), nfe, schedule.times),
        _held_out_error(sde, data, solver(), nfe),
    )
    assert optimised <= default


def test_optimised_schedule_on_a_mixture_beats_the_default_grid():
    sde, data = scoresde.VESDE(sigma_min=0.01, sigma_max=5.0), eight_gaussians()
    schedule = _optimise(sde, data, UniPC(), 6, fine=32, teacher_refine=3, sweeps=2)
    x_T = sde.prior_sampling((200, 2), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    ref, _ = scoresde.sample(sde, data.score_fn(sde), None, start=x_T, solver=UniPC(variant="bh2", grid="log_snr"),
                             steps=200, denoise=False)  # fmt: skip
    run = lambda s, t: scoresde.sample(sde, data.score_fn(sde), None, start=x_T, solver=s, nfe=6, denoise=False,  # noqa: E731
                                       times=t)[0]  # fmt: skip
    err = lambda x: float((x - ref).square().sum(1).mean())  # noqa: E731
    assert err(run(schedule.solver_for(UniPC()), schedule.times)) < err(run(UniPC(), None))


@pytest.mark.parametrize("nfe", [5, 10, pytest.param(20, marks=pytest.mark.slow)])
def test_pilot_cost_is_reported_and_within_a_tenth_of_a_50k_sample_run(nfe):
    sde, data = scoresde.VPSDE(), anisotropic_gaussian(8, seed=1)
    calls = []
    score = data.score_fn(sde)
    counted = lambda x, t: calls.append(x.shape[0]) or score(x, t)  # noqa: E731
    gen = torch.Generator().manual_seed(0)
    schedule = optimize_schedule(sde, counted, (64, 8), solver=UniPC(), nfe=nfe, generator=gen)
    assert schedule.pilot_calls == len(calls) and schedule.pilot_evaluations == sum(calls)
    assert schedule.pilots == 64 and schedule.solver == "unipc" and schedule.nfe == nfe
    assert schedule.pilot_evaluations <= 0.1 * 50_000 * nfe


def test_teacher_follows_the_exact_flow_map(sde):
    data = anisotropic_gaussian(8, min_std=0.05, seed=2)
    x_T = sde.prior_sampling((64, 8), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    lam = times_to_lam(sde, torch.tensor([sde.T, EPS], dtype=torch.float64))
    fine = lam_to_times(sde, torch.linspace(float(lam[0]), float(lam[1]), 33, dtype=torch.float64), EPS)
    states, evals = teacher(sde, CountingScore(data.score_fn(sde)), x_T, fine, 4)
    assert states.shape == (33, 64, 8) and len(evals) == 32
    exact = data.flow(sde, x_T, sde.T, EPS)
    assert float((states[-1] - exact).abs().max()) < 1e-4 * float(exact.abs().max())


@pytest.mark.parametrize("refine", [2, 3])
def test_the_teachers_own_evaluations_are_at_the_fine_times_and_its_states(refine):
    """The dynamic programme reuses the teacher's score calls: each must be at fine time j, at (nearly) x*_j."""
    sde, data = scoresde.VESDE(sigma_min=0.01, sigma_max=20.0), anisotropic_gaussian(4, min_std=0.1, seed=5)
    x_T = sde.prior_sampling((16, 4), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    lam = times_to_lam(sde, torch.tensor([sde.T, EPS], dtype=torch.float64))
    fine = lam_to_times(sde, torch.linspace(float(lam[0]), float(lam[1]), 25, dtype=torch.float64), EPS)
    states, evals = teacher(sde, CountingScore(data.score_fn(sde)), x_T, fine, refine)
    score = data.score_fn(sde)
    for j, (x, sc) in enumerate(evals):
        torch.testing.assert_close(sc, score(x, fine[j].expand(16)))  # the score at fine time j of that state
        assert float((x - states[j]).norm() / states[j].norm()) < 1e-2  # the predictor's state, within the corrector
    exact_evals = [(states[j], score(states[j], fine[j].expand(16))) for j in range(len(fine) - 1)]
    for prediction in ("data", "noise"):
        costs = first_order_costs(sde, states, evals, fine, prediction)
        exact = first_order_costs(sde, states, exact_evals, fine, prediction)
        longer = torch.triu(torch.ones_like(costs, dtype=torch.bool), diagonal=2)  # jumps over >= 2 fine intervals
        torch.testing.assert_close(costs[longer], exact[longer], rtol=0.1, atol=0)
        assert all(dp_path(costs, n) == dp_path(exact, n) for n in (3, 5, 8, 12))


def test_optimize_schedule_works_for_ddim_edm_heun_and_single_step_dpm_solver():
    sde, data = scoresde.VPSDE(), anisotropic_gaussian(4, seed=0)
    for solver, nfe in ((DDIM(), 6), (EDMHeun(), 8), (DPMSolver(order=3, method="singlestep"), 9)):
        schedule = _optimise(sde, data, solver, nfe, fine=32, sweeps=1)
        assert len(schedule.times) == len(solver.plan(sde, EPS, nfe=nfe))
        optimised = _held_out_error(sde, data, schedule.solver_for(solver), nfe, schedule.times)
        assert optimised <= _held_out_error(sde, data, solver, nfe) * 1.05


@pytest.mark.parametrize(
    ("solver", "message"),
    [("pc", "deterministic"), (DDIM(eta=1.0), "deterministic"), (scoresde.solvers.EulerMaruyama(), "deterministic")],
)
def test_optimize_schedule_refuses_stochastic_solvers(solver, message):
    sde, data = scoresde.VPSDE(), anisotropic_gaussian(2, seed=0)
    with pytest.raises(ValueError, match=message):
        optimize_schedule(sde, data.score_fn(sde), (4, 2), solver=solver, nfe=5)


def test_optimize_schedule_takes_a_solver_name_as_sample_does():
    sde, data = scoresde.VPSDE(), anisotropic_gaussian(2, seed=0)
    by_name = optimize_schedule(sde, data.score_fn(sde), (8, 2), solver="unipc", nfe=5, fine=16, sweeps=0,
                                generator=torch.Generator().manual_seed(0))  # fmt: skip
    by_object = optimize_schedule(sde, data.score_fn(sde), (8, 2), solver=scoresde.solvers.UniPC(), nfe=5, fine=16,
                                  sweeps=0, generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert torch.equal(by_name.times, by_object.times)
    with pytest.raises(ValueError, match="solver must be one of"):
        optimize_schedule(sde, data.score_fn(sde), (8, 2), solver="nonsense", nfe=5)


@pytest.mark.parametrize(("option", "value"), [("fine", 3), ("teacher_refine", 0), ("sweeps", -1), ("fine", 2.5)])
def test_optimize_schedule_refuses_bad_settings(option, value):
    sde, data = scoresde.VPSDE(), anisotropic_gaussian(2, seed=0)
    with pytest.raises(ValueError, match=option):
        optimize_schedule(sde, data.score_fn(sde), (4, 2), solver=UniPC(), nfe=5, **{option: value})
    with pytest.raises(ValueError, match="number of pilots"):
        optimize_schedule(sde, data.score_fn(sde), (1, 2), solver=UniPC(), nfe=5)


# ------------------------------------------------------------------------------------------------ files
def _saved(tmp_path, **overrides):
    sde, data = scoresde.VPSDE(), anisotropic_gaussian(2, seed=0)
    schedule = _optimise(sde, data, UniPC(), 5, fine=16, sweeps=0)
    ckpt = tmp_path / "ckpt_1.pt"
    ckpt.write_bytes(b"weights")
    schedule = type(schedule)(**(vars(schedule) | {"checkpoint": file_digest(ckpt)} | overrides))
    return schedule, save_schedule(schedule, schedule_path(tmp_path, "unipc", 5)), file_digest(ckpt)


def test_schedule_file_round_trip(tmp_path):
    schedule, path, digest = _saved(tmp_path)
    assert path == tmp_path / "schedules" / "unipc_nfe5.json"
    loaded = load_schedule(path, solver="unipc", nfe=5, eps=EPS, checkpoint=digest)
    torch.testing.assert_close(loaded.times, schedule.times, rtol=0, atol=0)
    assert loaded.pilot_evaluations == schedule.pilot_evaluations and loaded.options == schedule.options


@pytest.mark.parametrize(
    ("wanted", "message"),
    [({"solver": "dpm_solver"}, "solver='unipc', not 'dpm_solver'"), ({"nfe": 10}, "nfe=5, not 10"),
     ({"checkpoint": "0" * 64}, "checkpoint="), ({"eps": 1e-5}, "eps=0.001, not 1e-05")],
)  # fmt: skip
def test_schedule_file_for_another_solver_budget_or_checkpoint_is_refused(tmp_path, wanted, message):
    _, path, _ = _saved(tmp_path)
    with pytest.raises(ValueError, match=message.replace("(", r"\(")):
        load_schedule(path, **wanted)


def test_missing_or_foreign_schedule_file_is_refused(tmp_path):
    with pytest.raises(FileNotFoundError, match="python -m scoresde.schedule"):
        load_schedule(tmp_path / "none.json")
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="not a schedule file"):
        load_schedule(bad)


# ------------------------------------------------------------------------------------------------ sample(times=)
def _run(times, **kw):
    sde, data = scoresde.VPSDE(), eight_gaussians()
    x_T = torch.randn(8, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return scoresde.sample(sde, data.score_fn(sde), None, start=x_T, solver="unipc", times=times, **kw)


def test_sample_with_the_planned_grid_as_times_equals_the_default_run():
    sde = scoresde.VPSDE()
    planned = UniPC().plan(sde, EPS, nfe=7)
    a, info = _run(planned, nfe=7)
    b, _ = _run(None, nfe=7)
    assert torch.equal(a, b) and info.steps == 7
    c, info = _run(planned)  # no budget: the grid's own length
    assert torch.equal(a, c) and info.nfe == 8  # 7 + denoising


def test_sample_times_ending_above_eps_stops_there():
    times = torch.tensor([1.0, 0.5, 0.1, 0.05], dtype=torch.float64)
    _, info = _run(times, eps=1e-3)
    torch.testing.assert_close(info.times, times)


@pytest.mark.parametrize(
    ("times", "kw", "error", "message"),
    [
        (torch.tensor([1.0, 0.5, 0.6, 0.001]), {}, ValueError, "strictly decreasing.*times\\[1\\]"),
        (torch.tensor([1.0, 0.5, 0.5, 0.001]), {}, ValueError, "strictly decreasing"),
        (torch.tensor([1.0, 0.5, 1e-4]), {}, ValueError, "in \\[eps, T\\]"),
        (torch.tensor([1.5, 0.5, 0.001]), {}, ValueError, "in \\[eps, T\\]"),
        (torch.tensor([1.0, 0.5, 0.001]), {"nfe": 5}, ValueError, "2 intervals but the budget buys 5"),
        (torch.tensor([1.0, 0.5, 0.001]), {"steps": 3}, ValueError, "2 intervals but the budget buys 3"),
        (torch.tensor([1.0]), {}, ValueError, "at least 2 times"),
        (torch.tensor([[1.0, 0.001]]), {}, ValueError, "1-D"),
        (torch.tensor([1.0, float("nan"), 0.001]), {}, ValueError, "finite"),
        ([1.0, 0.5, 0.001], {}, TypeError, "floating-point tensor"),
        (torch.tensor([0.9, 0.5, 0.001]), {}, ValueError, "times\\[0\\] must be T"),
    ],
)
def test_sample_refuses_bad_times(times, kw, error, message):
    sde, data = scoresde.VPSDE(), eight_gaussians()
    with pytest.raises(error, match=message):
        scoresde.sample(sde, data.score_fn(sde), (4, 2), solver="unipc", times=times, **kw)


def test_sample_times_below_T_with_a_start():
    times = torch.tensor([0.9, 0.5, 0.001], dtype=torch.float64)
    _, info = _run(times)
    assert info.steps == 2
