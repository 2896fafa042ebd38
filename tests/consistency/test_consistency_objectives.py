"""Consistency objectives: CD's teacher step and loss at the exact flow map, iCT's schedules, ECT's gap."""

import math

import pytest
import torch
from consistency_checks import ExactFlowMap, make_net

import scoresde
from scoresde.consistency import (
    ConsistencyDistillation,
    ConsistencyModel,
    ConsistencyTraining,
    ConsistencyTuning,
    PseudoHuber,
    SquaredL2,
    ict_levels,
)
from scoresde.oracle import anisotropic_gaussian
from scoresde.solvers import EDMHeun


def test_teacher_step_is_one_step_of_the_library_solver(sde):
    data = anisotropic_gaussian(2)
    cd = ConsistencyDistillation(data.score_fn(sde), solver="edm_heun")
    x = torch.randn(6, 2, dtype=torch.float64)
    got = cd.teacher_step(sde, x, 0.6, 0.4)
    from scoresde.solvers.base import CountingScore, integrate

    ref, _ = integrate(EDMHeun(), sde, CountingScore(data.score_fn(sde)), x, torch.tensor([0.6, 0.4]).double())
    torch.testing.assert_close(got, ref)
    assert cd.teacher_calls == 2 * 6


@pytest.mark.parametrize("solver", ["edm_heun", "dpm_solver2"])
def test_cd_loss_at_the_exact_flow_map_is_the_teachers_local_error(sde, solver):
    """At the exact consistency function CD's loss is the squared local error of one second-order teacher step,
    O(h^6): it is tiny at the paper's N = 18 and falls about 64x when N doubles (measured: 60-100x)."""
    data = anisotropic_gaussian(2)
    x0 = data.sample(512, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    exact = ExactFlowMap(data, sde)
    losses = []
    for N in (18, 36):
        cd = ConsistencyDistillation(data.score_fn(sde), solver=solver, N=N, mu=0.0)
        losses.append(float(cd(exact, x0, torch.Generator().manual_seed(1))))
    assert losses[0] < 1e-4 and losses[1] < losses[0] / 30


def test_cd_refuses_stochastic_solvers_and_bad_settings():
    with pytest.raises(ValueError, match="deterministic"):
        ConsistencyDistillation(None, solver="euler_maruyama")
    with pytest.raises(ValueError, match="N"):
        ConsistencyDistillation(None, N=1)
    with pytest.raises(ValueError, match="mu"):
        ConsistencyDistillation(None, mu=1.0)
    with pytest.raises(ValueError, match="distance"):
        ConsistencyDistillation(None, distance="lpips")
    cd = ConsistencyDistillation(None)
    with pytest.raises(ValueError, match="teacher"):
        cd(ConsistencyModel(make_net((2,)), scoresde.VPSDE()), torch.randn(4, 2))


def test_cd_target_is_an_ema_of_the_student():
    sde, data = scoresde.VPSDE(), anisotropic_gaussian(2)
    model = ConsistencyModel(make_net((2,)), sde)
    cd = ConsistencyDistillation(data.score_fn(sde), mu=0.5)
    x0 = data.sample(16, generator=torch.Generator().manual_seed(0))
    cd(model, x0, torch.Generator().manual_seed(0))
    before = [p.clone() for p in cd.target.model.parameters()]
    with torch.no_grad():
        for p in model.parameters():
            p.add_(1.0)
    cd(model, x0, torch.Generator().manual_seed(0))
    for b, p, q in zip(before, cd.target.model.parameters(), model.parameters(), strict=True):
        torch.testing.assert_close(p, 0.5 * b + 0.5 * q)
    state = cd.state_dict()
    resumed = ConsistencyDistillation(data.score_fn(sde), mu=0.5)
    resumed.load_state_dict(state)
    resumed(model, x0, torch.Generator().manual_seed(0))
    assert resumed.step == 3


def test_ict_levels_double_from_10_to_1280():
    K = 64000
    counts = [ict_levels(k, K) for k in range(0, K, 1000)]
    assert counts[0] == 11 and counts[-1] == 1281
    assert sorted(set(counts)) == [11, 21, 41, 81, 161, 321, 641, 1281]


def test_ict_level_probabilities_are_the_lognormal_mass():
    ct = ConsistencyTraining(1000)
    sigmas = torch.tensor([0.002, 0.1, 0.5, 2.0, 80.0], dtype=torch.float64)
    p = ct.level_probs(sigmas)
    cdf = [0.5 * (1 + math.erf((math.log(s) + 1.1) / (2.0 * math.sqrt(2)))) for s in sigmas.tolist()]
    expect = torch.tensor([cdf[i + 1] - cdf[i] for i in range(4)], dtype=torch.float64)
    torch.testing.assert_close(p, expect / expect.sum())


def test_ict_loss_is_finite_and_steps_advance(sde):
    ct = ConsistencyTraining(100)
    model = ConsistencyModel(make_net((2,)), sde)
    loss = ct(model, torch.randn(32, 2), torch.Generator().manual_seed(0))
    loss.backward()
    assert math.isfinite(float(loss.detach())) and ct.step == 1 and ct.state_dict() == {"step": 1}


def test_ect_gap_shrinks_by_q_per_stage(sde):
    ect = ConsistencyTuning(800, stages=8, q=2.0)
    sigma = torch.tensor([0.01, 1.0, 10.0])
    first = ect.gap_ratio(sigma)
    ect.step = 100
    torch.testing.assert_close(ect.gap_ratio(sigma), first / 2)
    ect.step = 799
    torch.testing.assert_close(ect.gap_ratio(sigma), first / 2**7)
    model = ConsistencyModel(make_net((2,)), sde)
    loss = ect(model, torch.randn(32, 2), torch.Generator().manual_seed(0))
    assert math.isfinite(float(loss.detach()))


def test_distances():
    a, b = torch.zeros(3, 4), torch.ones(3, 4)
    torch.testing.assert_close(SquaredL2()(a, b), torch.ones(3))
    c = 0.00054 * 2
    torch.testing.assert_close(PseudoHuber()(a, b), torch.full((3,), math.sqrt(4 + c**2) - c))
    with pytest.raises(ValueError, match="c must"):
        PseudoHuber(c=0)


@pytest.mark.parametrize("rtol", [1e-2, 1e-4])
def test_auto_levels_make_the_teachers_composed_map_accurate(sde, rtol):
    """N="auto" doubles N from 18 until the composed teacher map moves by <= rtol x scale; against the exact flow
    map of Gaussian data (closed form) the chosen N's map is then within about rtol (Heun's error falls ~4x per
    doubling, so the N-vs-2N change bounds the error by 4/3 of itself), and N / 2 was not."""
    data = anisotropic_gaussian(2)
    x0 = data.sample(256, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    model = ConsistencyModel(make_net((2,)), sde).double()
    cd = ConsistencyDistillation(data.score_fn(sde), N="auto", map_rtol=rtol, mu=0.0)
    n = cd.choose_levels(model, x0)
    scale = float(model.sigma_data)
    assert n in (18, 36, 72, 144, 288, 576) and cd.map_errors[n] <= rtol
    assert all(cd.map_errors[k] > rtol for k in cd.map_errors if k < n)
    start = sde.prior_sampling((256, 2), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    from scoresde.consistency.objectives import level_times

    exact = ExactFlowMap(data, sde)(start, torch.full((256,), sde.T, dtype=torch.float64))
    got = cd.teacher_map(sde, start, level_times(sde, model.eps, n, 7.0))
    assert float((got - exact).pow(2).mean().sqrt()) / scale <= 1.5 * rtol
    if rtol == 1e-4:
        assert n > 18  # the search doubled


def test_auto_levels_are_chosen_once_and_kept_by_checkpoints(sde):
    data = anisotropic_gaussian(2)
    x0 = data.sample(64, generator=torch.Generator().manual_seed(0))
    model = ConsistencyModel(make_net((2,)), sde)
    cd = ConsistencyDistillation(data.score_fn(sde), mu=0.5)
    assert cd.N == "auto"
    cd(model, x0, torch.Generator().manual_seed(0))
    chosen, calls = cd.N, cd.teacher_calls
    assert isinstance(chosen, int) and calls > 0
    cd(model, x0, torch.Generator().manual_seed(1))
    assert cd.N == chosen and cd.teacher_calls - calls <= 2 * x0.shape[0]  # no second search
    resumed = ConsistencyDistillation(data.score_fn(sde), mu=0.5)
    resumed.load_state_dict(cd.state_dict())
    assert resumed.N == chosen and resumed.map_errors == cd.map_errors
    with pytest.raises(ValueError, match="map_rtol"):
        ConsistencyDistillation(None, map_rtol=0.0)
    with pytest.raises(ValueError, match="N"):
        ConsistencyDistillation(None, N="many")
