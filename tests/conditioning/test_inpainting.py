"""scoresde.inpaint: the observed entries, input checks, budgets, and the closed-form conditional of a Gaussian."""

import pytest
import torch
from conditioning_checks import SDES, fd_ratio, gaussian_problem

import scoresde
from scoresde.conditioning import RePaint, Replacement

METHODS = {
    "replacement_rd": dict(method="replacement", steps=20),
    "replacement_pc": dict(method="replacement", solver="pc", corrector="annealed_langevin", steps=10),
    "replacement_em": dict(method="replacement", solver="euler_maruyama", steps=20),
    "replacement_ode": dict(method="replacement", solver="ode", method_="rk4", noise="fixed", steps=10),
    "repaint": dict(method="repaint", resamplings=3, steps=10),
    "smc": dict(method="smc", particles=4, steps=10),
}


@pytest.fixture(scope="module")
def problem():
    return gaussian_problem()


def _run(sde, score_fn, y, mask, spec, **kw):
    spec = dict(spec)
    if "method_" in spec:  # the ODE's own "method" option
        spec["method"], solver_method = spec["method"], spec.pop("method_")
        spec["solver"] = scoresde.solvers.ProbabilityFlowODE(solver_method)
    return scoresde.inpaint(sde, score_fn, y, mask, **spec, **kw)


@pytest.mark.parametrize("name", sorted(METHODS))
@pytest.mark.parametrize("sde_name", sorted(SDES))
def test_samples_equal_y_where_observed(name, sde_name, problem):
    g, y0, mask, _ = problem
    sde = SDES[sde_name]()
    y = g.sample(8, generator=torch.Generator().manual_seed(1))
    x, info = _run(sde, g.score_fn(sde), y, mask, METHODS[name], generator=torch.Generator().manual_seed(2))
    assert x.shape == y.shape and bool(torch.isfinite(x).all())
    assert torch.equal(x[:, mask], y[:, mask])
    assert not torch.allclose(x[:, ~mask], y[:, ~mask])
    assert info.nfe > 0 and info.steps == METHODS[name]["steps"]


def test_mask_broadcasts_over_the_batch(problem):
    g, _, mask, _ = problem
    sde = scoresde.VPSDE()
    y = g.sample(5, generator=torch.Generator().manual_seed(1))
    a, _ = scoresde.inpaint(sde, g.score_fn(sde), y, mask, steps=10, generator=torch.Generator().manual_seed(3))
    b, _ = scoresde.inpaint(sde, g.score_fn(sde), y, mask.expand(5, 12).clone(), steps=10,
                            generator=torch.Generator().manual_seed(3))  # fmt: skip
    torch.testing.assert_close(a, b)


def test_per_sample_masks_on_images():
    sde = scoresde.VESDE(sigma_max=5.0)
    y = torch.randn(3, 1, 4, 4)
    mask = torch.rand(3, 1, 4, 4, generator=torch.Generator().manual_seed(0)) < 0.5
    x, _ = scoresde.inpaint(sde, lambda x, t: -x, y, mask, method="smc", particles=3, steps=5)
    assert torch.equal(x[mask], y[mask])


@pytest.mark.parametrize(
    "y, mask, match",
    [
        (torch.zeros(2, 12), torch.zeros(12), "mask"),  # not boolean
        (torch.zeros(2, 12), torch.zeros(12, dtype=torch.int64), "mask"),
        (torch.zeros(2, 12), torch.zeros(11, dtype=torch.bool), "mask"),  # wrong shape
        (torch.zeros(2, 12), torch.zeros(3, 12, dtype=torch.bool), "mask"),
        (torch.full((2, 12), float("nan")), torch.zeros(12, dtype=torch.bool), "y"),
        (torch.zeros(12), torch.zeros(12, dtype=torch.bool), "y"),  # no batch dimension
        (torch.zeros(2, 12, dtype=torch.int64), torch.zeros(12, dtype=torch.bool), "y"),
    ],
)
def test_bad_input_raises_value_error_naming_it(y, mask, match):
    with pytest.raises(ValueError, match=match):
        scoresde.inpaint(scoresde.VPSDE(), lambda x, t: -x, y, mask, steps=2)


def test_bad_options_raise():
    sde, y, mask = scoresde.VPSDE(), torch.zeros(2, 4), torch.ones(4, dtype=torch.bool)
    for options, match in [
        (dict(method="nope"), "method"),
        (dict(steps=3, nfe=10), "steps or nfe"),
        (dict(nfe=0), "nfe"),
        (dict(method="smc", particles=4, nfe=3), "nfe"),
        (dict(method="repaint", resamplings=0), "resamplings"),
        (dict(noise="sometimes"), "noise"),
        (dict(method="smc", kernel="heun"), "kernel"),
    ]:
        with pytest.raises(ValueError, match=match):
            scoresde.inpaint(sde, lambda x, t: -x, y, mask, **options)


@pytest.mark.parametrize(
    "spec",
    [
        dict(method="replacement"),
        dict(method="replacement", solver="pc", corrector="annealed_langevin", n_corrector_steps=2),
        dict(method="replacement", solver="dpm_solver3", noise="fixed"),
        dict(method="replacement", solver="edm_heun", noise="fixed"),
        dict(method="repaint", resamplings=4),
        dict(method="smc", particles=6, ensemble=False),
        dict(method="smc"),  # the ensemble filter with K from the budget
    ],
)
@pytest.mark.parametrize("nfe", [13, 50, 101])
def test_nfe_budget_is_never_exceeded(spec, nfe):
    sde, y, mask = scoresde.VPSDE(), torch.randn(2, 4), torch.tensor([True, False, True, False])
    x, info = scoresde.inpaint(sde, lambda x, t: -x, y, mask, nfe=nfe, **spec)
    assert 0 < info.nfe <= nfe and info.extras["budget"] == nfe


def test_adaptive_ode_refuses_a_budget():
    with pytest.raises(ValueError, match="fixed-step"):
        scoresde.inpaint(scoresde.VPSDE(), lambda x, t: -x, torch.zeros(1, 2), torch.tensor([True, False]),
                         solver="ode", nfe=100)  # fmt: skip


def test_exact_posterior_matches_monte_carlo(problem):
    """The closed form (conditioning a joint Gaussian) against rejection-free regression on joint draws."""
    g, y, mask, post = problem
    x = g.sample(200_000, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    xo, xu = x[:, mask], x[:, ~mask]
    a = torch.linalg.lstsq(torch.cat([xo, torch.ones(len(x), 1, dtype=x.dtype)], 1), xu).solution
    mean = torch.cat([y[mask], torch.ones(1, dtype=x.dtype)]) @ a
    resid = xu - torch.cat([xo, torch.ones(len(x), 1, dtype=x.dtype)], 1) @ a
    torch.testing.assert_close(mean, post.mean, atol=0.02, rtol=0)
    torch.testing.assert_close(torch.cov(resid.T), post.cov, atol=0.01, rtol=0)


def test_replacement_is_biased_and_repaint_reduces_the_bias(problem):
    """The paper's method stays far from the exact conditional; resampling moves it closer (VP, 12-D Gaussian)."""
    g, y0, mask, post = problem
    sde = scoresde.VPSDE()
    y = y0.expand(1000, 12).clone()
    gen = torch.Generator().manual_seed(0)
    x, _ = scoresde.inpaint(sde, g.score_fn(sde), y, mask, method=Replacement(), steps=200, generator=gen)
    x_rp, _ = scoresde.inpaint(sde, g.score_fn(sde), y, mask, method=RePaint(resamplings=5), steps=40, generator=gen)
    bias, bias_rp = fd_ratio(post, x), fd_ratio(post, x_rp)
    assert bias > 20 and bias_rp < bias / 2
