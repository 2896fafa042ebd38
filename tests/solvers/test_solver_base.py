"""The integration loop, the coefficient table, NFE counting and adding a solver from outside the package."""

import pytest
import torch

import scoresde
from scoresde.oracle import Gaussian
from scoresde.solvers import (
    BudgetExceededError,
    CountingScore,
    EulerMaruyama,
    GridCoefficients,
    NonFiniteError,
    Solver,
    grids,
    integrate,
)
from scoresde.solvers.base import steps_for_budget

DATA = Gaussian(torch.tensor([1.0, -0.5]), std=torch.tensor([0.5, 0.3]))


def test_coefficients_are_the_sdes(sde):
    t = grids.uniform(sde, 5, 1e-3)
    c = GridCoefficients.from_grid(sde, t)
    dt = t[:-1] - t[1:]
    for i in range(5):
        x = torch.ones(1, 1, dtype=torch.float64)
        f, G = sde.discretize(x, float(t[i]), float(dt[i]))
        assert c.r[i] == pytest.approx(float(f) + 1, rel=1e-12)
        assert c.v[i] == pytest.approx(float(G) ** 2, rel=1e-12)
        assert c.dt[i] == pytest.approx(float(dt[i]))
    assert c.m == pytest.approx(sde.mean_scale(t).tolist())
    assert c.s == pytest.approx(sde.std(t).tolist())
    assert c.g2 == pytest.approx(sde.g2(t).tolist())
    assert c.sigma == pytest.approx(sde.sigma(t).tolist())


class HalfwayToTweedie(Solver):
    """A user-defined solver: x <- m(t_{i+1}) E[x_0 | x_t_i], written without touching the package."""

    default_steps = 3

    def step(self, x, i, ctx):
        c = ctx.coeffs
        x0 = (x + c.s[i] ** 2 * ctx.score(x, ctx.t(i))) / c.m[i]
        return c.m[i + 1] * x0


def test_a_new_solver_plugs_into_sample(sde):
    calls = []
    x, info = scoresde.sample(sde, DATA.score_fn(sde), (5, 2), solver=HalfwayToTweedie(), denoise=False,
                              callback=lambda i, t, x: calls.append((i, t, x.shape)))  # fmt: skip
    assert info.nfe == 3 and info.solver == "HalfwayToTweedie"
    assert [c[0] for c in calls] == [0, 1, 2]
    assert [c[1] for c in calls] == pytest.approx(info.times[1:].tolist())


def test_non_finite_state_names_step_and_time(sde):
    class Explodes(Solver):
        def step(self, x, i, ctx):
            return x * (float("inf") if i == 3 else 1.0)

    times = grids.uniform(sde, 6, 1e-3)
    score = CountingScore(DATA.score_fn(sde))
    with pytest.raises(NonFiniteError, match=r"step 3 of 6 \(from t=0\.5005 to t=0\.334\)"):
        integrate(Explodes(), sde, score, torch.zeros(2, 2), times)


def test_the_final_denoising_step_is_outside_the_budget_and_checked(sde):
    """integrate(denoise=True) ends on Tweedie's E[x_0 | x_eps], the score's one call past the budget; a score that
    breaks only at eps (where no step evaluates it) is caught there, by the same check."""
    times = grids.uniform(sde, 4, 1e-3)
    x_eps = torch.randn(3, 2, generator=torch.Generator().manual_seed(0))
    score = CountingScore(DATA.score_fn(sde), budget=4)
    out, _ = integrate(EulerMaruyama(), sde, score, x_eps, times, denoise=True)
    assert score.calls == 5
    nan_at_eps = CountingScore(lambda x, t: torch.where(t[:, None] < 2e-3, float("nan"), -x))
    with pytest.raises(NonFiniteError, match=r"final denoising step at t=0\.001 gave non-finite values"):
        integrate(EulerMaruyama(), sde, nan_at_eps, x_eps, times, denoise=True)
    assert nan_at_eps.calls == 5


def test_steps_for_budget_is_the_largest_fitting_count():
    assert steps_for_budget(lambda k: 3 * k + 1, 31, "m") == 10  # affine: 10 steps cost 31
    assert steps_for_budget(lambda k: k * k, 50, "m") == 7  # not affine: 49 <= 50 < 64
    assert steps_for_budget(lambda k: 2 * k - 1, 35, "m") == 18  # Heun with an Euler last step: 18 steps, 35 NFE
    with pytest.raises(ValueError, match=r"nfe=5 is below the minimum of 10 score evaluations for m"):
        steps_for_budget(lambda k: 10 * k, 5, "m")
    with pytest.raises(ValueError, match="nfe must be an integer >= 1"):
        steps_for_budget(lambda k: k, 0, "m")


def test_an_adaptive_solver_keeps_its_grid_under_a_budget(sde):
    """Solver.plan: a budget buys nfe // nfe_per_step intervals of a fixed-step solver; an adaptive one keeps its
    default output intervals (its error control spends the budget) but still refuses a budget below one attempt."""
    from scoresde.solvers import AdaptiveSDE, ProbabilityFlowODE

    assert len(ProbabilityFlowODE("rk4").plan(sde, 1e-3, nfe=41)) - 1 == 10
    for solver in (ProbabilityFlowODE("dopri5"), AdaptiveSDE()):
        assert solver.adaptive and len(solver.plan(sde, 1e-3, nfe=500)) - 1 == solver.default_steps
    with pytest.raises(ValueError, match="nfe=1 is below the minimum of 2 score evaluations for AdaptiveSDE"):
        AdaptiveSDE().plan(sde, 1e-3, nfe=1)
    with pytest.raises(ValueError, match="fixed-step"):
        scoresde.inpaint(sde, DATA.score_fn(sde), torch.zeros(1, 2), torch.tensor([True, False]),
                         solver="adaptive_sde", nfe=100)  # fmt: skip


def test_counting_score_counts_calls_and_rows():
    score = CountingScore(lambda x, t: -x, budget=2)
    score(torch.zeros(4, 2), torch.zeros(4))
    score(torch.zeros(3, 2), torch.zeros(3))
    assert (score.calls, score.rows) == (2, 7)
    with pytest.raises(BudgetExceededError, match="nfe=2"):
        score(torch.zeros(1, 2), torch.zeros(1))
    assert (score.calls, score.rows) == (2, 7)


def test_counting_score_checks_shape():
    score = CountingScore(lambda x, t: x[:, :1])
    with pytest.raises(ValueError, match=r"score_fn returned \(4, 1\) for x of shape \(4, 2\)"):
        score(torch.zeros(4, 2), torch.zeros(4))
    assert score.calls == 1
    with pytest.raises(TypeError, match="callable"):
        CountingScore(3)


def test_trajectory_holds_every_grid_state(sde):
    x_T = torch.randn(3, 2)
    x, info = scoresde.sample(sde, DATA.score_fn(sde), None, start=x_T, solver="euler_maruyama", steps=6,
                              trajectory=True, denoise=False)  # fmt: skip
    assert info.trajectory.shape == (7, 3, 2)
    assert torch.equal(info.trajectory[0], x_T) and torch.equal(info.trajectory[-1], x)
