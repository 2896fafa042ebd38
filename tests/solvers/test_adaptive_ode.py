"""Per-sample Dormand-Prince: the exact flow map and likelihood, batch independence, cost on mixed batches."""

import pytest
import torch

import scoresde
from scoresde.oracle import Gaussian, anisotropic_gaussian, eight_gaussians
from scoresde.solvers.adaptive_ode import dopri5_per_sample

DIAG = Gaussian(torch.tensor([1.0, -0.5]), std=torch.tensor([0.5, 0.2]))  # elementwise score: bitwise batch-invariant


def test_dopri5_per_sample_solves_linear_odes_with_different_rates():
    """dy/dt = -k_b y per sample: exact e^{-k_b t}; stiffer samples take more steps, easy ones are not charged."""
    k = torch.tensor([0.1, 1.0, 10.0, 40.0], dtype=torch.float64)
    calls = []
    res = dopri5_per_sample(lambda t, y, idx: calls.append(idx) or (-k[idx] * y[0],),
                            (torch.ones(4, dtype=torch.float64),), 0.0, 1.0, rtol=1e-8, atol=1e-10)  # fmt: skip
    torch.testing.assert_close(res.y[0], torch.exp(-k), rtol=1e-6, atol=1e-9)
    nfe = res.nfe_per_sample.tolist()
    assert nfe == sorted(nfe) and nfe[0] < nfe[-1] / 3 and len(calls) == max(nfe) and res.finite
    assert nfe == [sum(int((i == b).sum()) for i in calls) for b in range(4)]  # rows evaluated per sample


def test_dopri5_per_sample_stops_where_the_right_hand_side_breaks():
    """dy/dt = -y, NaN below t = 0.5 for the second sample only, backwards from 1 to 0: the solve stops, that
    sample's state is NaN, the others' are not."""

    def f(t, y, idx):
        return (torch.where((idx == 1) & (t < 0.5), float("nan"), -y[0]),)

    res = dopri5_per_sample(f, (torch.ones(3, dtype=torch.float64),), 1.0, 0.0, rtol=1e-6, atol=1e-8)
    assert not res.finite and bool(res.y[0][1].isnan()) and bool(res.y[0][[0, 2]].isfinite().all())


def test_a_non_finite_score_names_the_first_bad_evaluation(sde):
    """Sampling from T with a score that is NaN below t = 0.4: shared and per-sample steps name the time of the
    first evaluation below 0.4 (recorded here), inside the one output interval."""
    x_T = sde.prior_sampling((4, 2), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    score, seen = DIAG.score_fn(sde), []

    def bad(x, t):
        seen.append(t)
        return torch.where(t[:, None] < 0.4, float("nan"), score(x, t))

    for per_sample in (False, True):
        seen.clear()
        with pytest.raises(scoresde.solvers.NonFiniteError, match=r"step 0 of 1 \(from t=1 to t=0.001, first") as err:
            scoresde.sample(sde, bad, None, start=x_T, solver="ode", per_sample=per_sample, denoise=False)
        at = float(str(err.value).split("first at t=")[1].split(")")[0])
        first = next(t for t in seen if bool((t < 0.4).any()))
        assert at == pytest.approx(float(first[first < 0.4].max()), rel=1e-5)


def test_sampling_matches_the_exact_flow_map(sde):
    data = anisotropic_gaussian(8)
    x_T = sde.prior_sampling((64, 8), generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x, info = scoresde.sample(sde, data.score_fn(sde), None, start=x_T, solver="ode", per_sample=True, denoise=False)
    exact = data.flow(sde, x_T, sde.T, 1e-3)
    assert float((x - exact).abs().max()) < 1e-3 * float(exact.abs().max())
    assert info.extras["sample_evaluations"] == sum(info.extras["nfe_per_sample"])
    assert info.extras["nfe_max"] == info.nfe


def test_a_sample_does_not_depend_on_its_batch(sde):
    x_T = sde.prior_sampling((5, 2), generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    run = lambda x: scoresde.sample(sde, DIAG.score_fn(sde), None, start=x, solver="ode", per_sample=True,  # noqa: E731
                                    denoise=False)[0]  # fmt: skip
    torch.testing.assert_close(run(x_T[:2]), run(torch.cat([x_T[:2], 50 * x_T[2:]]))[:2], rtol=0, atol=0)
    x = DIAG.sample(5, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    like = lambda x: scoresde.log_likelihood(sde, DIAG.score_fn(sde), x, per_sample=True).logp  # noqa: E731
    torch.testing.assert_close(like(x[:2]), like(torch.cat([x[:2], 8 * x[2:]]))[:2], rtol=0, atol=0)


def test_likelihood_matches_the_perfect_solver(sde):
    """Exact divergence at rtol = atol = 1e-5: as close to the oracle's ode_log_prob as the batch solver (measured
    1.4e-5 to 3e-5 nats/dim for both on this 4-D Gaussian with stds down to 0.1)."""
    data = anisotropic_gaussian(4)
    x = data.sample(32, generator=torch.Generator().manual_seed(3), dtype=torch.float64)
    exact = data.ode_log_prob(sde, x, eps=1e-5)
    res = scoresde.log_likelihood(sde, data.score_fn(sde), x, per_sample=True)
    err = float(((res.logp - exact).abs() / 4).max())
    shared = scoresde.log_likelihood(sde, data.score_fn(sde), x, per_sample=False).logp
    batch_err = float(((shared - exact).abs() / 4).max())
    assert err < 5e-5 and err < 2 * batch_err
    assert res.nfe_per_sample.shape == (32,) and res.nfe == int(res.nfe_per_sample.max())


@pytest.mark.slow
def test_fewer_evaluations_than_the_batch_solver_on_a_mixed_batch():
    """On the 2-D mixture, points between the modes need many more steps than points on a mode: torchdiffeq's
    shared steps charge everyone for them; per sample the batch costs a third (measured), at the same accuracy."""
    sde, data = scoresde.VPSDE(), eight_gaussians()
    gen = torch.Generator().manual_seed(0)
    x = data.sample(32, generator=gen, dtype=torch.float64)
    x[:4] = 6 * torch.rand(4, 2, generator=gen, dtype=torch.float64) - 3
    reference = scoresde.log_likelihood(sde, data.score_fn(sde), x, rtol=1e-9, atol=1e-9).logp
    batch = scoresde.log_likelihood(sde, data.score_fn(sde), x)
    per = scoresde.log_likelihood(sde, data.score_fn(sde), x, per_sample=True)
    assert int(per.nfe_per_sample.sum()) < batch.nfe * len(x) / 2
    err, batch_err = ((r.logp - reference).abs().max() for r in (per, batch))
    assert err < 2 * batch_err


def test_hutchinson_probes_follow_their_samples():
    sde, x = scoresde.VPSDE(), DIAG.sample(6, generator=torch.Generator().manual_seed(5), dtype=torch.float64)
    run = lambda per: scoresde.log_likelihood(sde, DIAG.score_fn(sde), x, divergence="rademacher", per_sample=per,  # noqa: E731
                                              generator=torch.Generator().manual_seed(6)).logp  # fmt: skip
    torch.testing.assert_close(run(True), run(False), rtol=0, atol=1e-3)


def test_bad_options():
    with pytest.raises(ValueError, match="per_sample=True needs method='dopri5'"):
        scoresde.solvers.ProbabilityFlowODE("rk4", per_sample=True)
    with pytest.raises(ValueError, match="per_sample=True needs method='dopri5'"):
        scoresde.log_likelihood(scoresde.VPSDE(), DIAG.score_fn(scoresde.VPSDE()), torch.ones(2, 2), method="bosh3",
                                per_sample=True)  # fmt: skip
