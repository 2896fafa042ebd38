"""``scoresde.sample``: every solver on every SDE and shape, denoising, mixtures, reproducibility, bad input."""

import pytest
import torch
from solvers.solver_checks import fd_to, marginal_mixture, noise_floor, tweedie_target

import scoresde
from scoresde.oracle import Gaussian, eight_gaussians
from scoresde.solvers import SOLVERS, NonFiniteError, PredictorCorrector

DATA = Gaussian(torch.tensor([1.0, -0.5]), cov=torch.tensor([[0.3, 0.12], [0.12, 0.1]]))

CONFIGS = {
    "euler_maruyama": dict(solver="euler_maruyama", steps=6),
    "pc": dict(solver="pc", steps=6),
    "pc-ancestral-ald": dict(solver="pc", steps=6, predictor="ancestral", corrector="annealed_langevin"),
    "pc-corrector-only": dict(solver="pc", steps=6, predictor="none", n_corrector_steps=2),
    "reverse_diffusion": dict(solver="reverse_diffusion", steps=6),
    "ancestral": dict(solver="ancestral", steps=6),
    "ald": dict(solver="ald", steps=3, n_steps_each=2),
    "ode-dopri5": dict(solver="ode", method="dopri5"),
    "ode-rk4": dict(solver="ode", method="rk4", steps=4),
    "ode-heun": dict(solver="ode", method="heun", steps=4),
}


@pytest.mark.parametrize("config", sorted(CONFIGS))
def test_every_solver_runs_on_every_sde_and_shape(sde, event_shape, config):
    data = Gaussian(torch.zeros(event_shape), std=0.5)
    calls = []

    def score(x, t):
        calls.append(x.shape[0])
        return data.score(sde, x, t)

    x, info = scoresde.sample(
        sde, score, (5, *event_shape), generator=torch.Generator().manual_seed(0), **CONFIGS[config]
    )
    assert x.shape == (5, *event_shape) and bool(torch.isfinite(x).all())
    assert info.nfe == len(calls) > 0 and info.wall_time > 0
    assert info.extras["denoise"] is True


def test_solver_names_and_objects():
    assert set(SOLVERS) >= {"euler_maruyama", "pc", "ald", "ode"}
    with pytest.raises(
        ValueError, match=r"solver must be one of \[.*'ald', 'ancestral', .*'euler_maruyama', .*'ode', 'pc'"
    ):
        scoresde.sample(scoresde.VPSDE(), DATA.score_fn(scoresde.VPSDE()), (2, 2), solver="no_such_solver")
    with pytest.raises(TypeError, match="only accepted with a solver name"):
        scoresde.sample(scoresde.VPSDE(), lambda x, t: x, (2, 2), solver=PredictorCorrector(), snr=0.1)


def test_denoise_is_tweedie_and_costs_one_evaluation(sde):
    """denoise=True returns E[x_0 | x_eps]; its law for a Gaussian is N(mu, Sigma (Sigma + sigma^2)^-1 Sigma)."""
    n = 4000
    gen = torch.Generator().manual_seed(0)
    x_T = DATA.marginal(sde, sde.T).sample(n, generator=gen)
    x, info = scoresde.sample(sde, DATA.score_fn(sde), None, start=x_T, solver="ancestral", generator=gen)
    assert info.nfe == 1001
    target = tweedie_target(DATA, sde, 1e-3)
    assert fd_to(x, target) < 6 * noise_floor(target, n)


@pytest.mark.parametrize(
    "options",
    [
        {"solver": "ode"},
        pytest.param({"solver": "euler_maruyama"}, marks=pytest.mark.slow),
        pytest.param(
            {"solver": "pc", "predictor": "ancestral", "corrector": "annealed_langevin"}, marks=pytest.mark.slow
        ),
    ],
)
def test_mixture_mode_weights(options):
    """The 8-mode mixture with unequal weights: per-mode sample fractions within 4 binomial standard errors."""
    sde = scoresde.VESDE(sigma_min=0.01, sigma_max=5.0)
    mix = eight_gaussians(weights=[1, 2, 3, 4, 1, 2, 3, 4])
    n = 4000
    gen = torch.Generator().manual_seed(0)
    x_T = marginal_mixture(mix, sde, sde.T).sample(n, generator=gen)
    x, _ = scoresde.sample(sde, mix.score_fn(sde), None, start=x_T, generator=gen, **options)
    counts = torch.bincount(mix.responsibilities(None, x.double()).argmax(1), minlength=8).double() / n
    w = mix.weights
    assert bool(((counts - w).abs() < 4 * (w * (1 - w) / n).sqrt()).all()), (counts, w)


def test_reproducible_with_a_generator_and_dtype(sde):
    run = lambda seed, **kw: scoresde.sample(sde, DATA.score_fn(sde), (4, 2), solver="euler_maruyama", steps=5,  # noqa: E731
                                             generator=torch.Generator().manual_seed(seed), **kw)[0]  # fmt: skip
    assert torch.equal(run(0), run(0)) and not torch.equal(run(0), run(1))
    assert run(0, dtype=torch.float64).dtype == torch.float64
    start = torch.randn(4, 2, dtype=torch.float64)
    x, _ = scoresde.sample(sde, DATA.score_fn(sde), None, start=start, solver="ode", method="euler", steps=3)
    assert x.dtype == torch.float64


def test_progress_bar_shows_the_solver_steps(capsys):
    sde = scoresde.VPSDE()
    x, info = scoresde.sample(sde, DATA.score_fn(sde), (2, 2), solver="pc", steps=3, progress=True)
    err = capsys.readouterr().err
    assert "PredictorCorrector" in err and "0/3" in err  # a bar named after the solver, over its 3 steps
    assert info.nfe == 7 and bool(torch.isfinite(x).all())
    scoresde.sample(sde, DATA.score_fn(sde), (2, 2), solver="pc", steps=3)
    assert capsys.readouterr().err == ""  # no bar by default


def test_bad_input():
    sde = scoresde.VPSDE()
    score = DATA.score_fn(sde)
    with pytest.raises(ValueError, match="steps must be an integer >= 1"):
        scoresde.sample(sde, score, (2, 2), steps=0)
    for eps in (0.0, 1.0, -0.1, 3.0):
        with pytest.raises(ValueError, match=r"eps must lie in \(0, T\)"):
            scoresde.sample(sde, score, (2, 2), eps=eps)
    with pytest.raises(ValueError, match=r"score_fn returned \(2, 3\) for x of shape \(2, 2\)"):
        scoresde.sample(sde, lambda x, t: torch.zeros(2, 3), (2, 2))
    with pytest.raises(ValueError, match="start has shape"):
        scoresde.sample(sde, score, (3, 2), start=torch.zeros(2, 2))
    with pytest.raises(TypeError, match="start must be a floating-point tensor"):
        scoresde.sample(sde, score, None, start=[[0.0, 1.0]])
    with pytest.raises(TypeError, match="sde must be a scoresde.SDE"):
        scoresde.sample("vp", score, (2, 2))
    with pytest.raises(TypeError, match="score_fn must be callable"):
        scoresde.sample(sde, None, (2, 2))
    with pytest.raises(ValueError, match="shape"):
        scoresde.sample(sde, score, (0, 2))


def test_nan_mid_trajectory_stops_with_step_and_time():
    sde = scoresde.VPSDE()

    def score(x, t):
        return torch.where(t[:, None] < 0.5, float("nan"), DATA.score(sde, x, t))

    with pytest.raises(NonFiniteError, match=r"non-finite values at step 6 of 10 \(from t=0\.4006"):
        scoresde.sample(sde, score, (4, 2), solver="euler_maruyama", steps=10)


def test_sample_refuses_a_score_model_of_another_sde():
    ve = scoresde.VESDE(sigma_min=0.01, sigma_max=5.0)
    model = scoresde.ScoreModel(scoresde.models.MLP((2,), width=8, num_blocks=1), ve)
    with pytest.raises(ValueError, match="built for VESDE"):
        scoresde.sample(scoresde.VPSDE(), model, (4, 2), solver="euler_maruyama", steps=3)
