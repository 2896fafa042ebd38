"""Noise-level distributions, EDM / EDM2 weightings, and the EMA profiles (issue 16)."""

import math

import numpy as np
import pytest
import torch
from torch import nn

from scoresde import VESDE, VPSDE, SubVPSDE, dsm_loss, dsm_loss_per_sample
from scoresde.losses import sample_time_lognormal
from scoresde.models import ScoreModel
from scoresde.training import TrainConfig, Trainer
from scoresde.training.ema import (
    EMA,
    HalfLifeEMA,
    PowerEMA,
    gamma_to_sigma_rel,
    make_ema,
    posthoc_average,
    posthoc_coefficients,
    sigma_rel_to_gamma,
)
from scoresde.training.objectives import DSMObjective, LogVarianceHead

SDES = [VPSDE(), SubVPSDE(), VESDE(0.01, 50.0)]


class Lin(nn.Module):
    def __init__(self, d: int = 2) -> None:
        super().__init__()
        self.lin = nn.Linear(d + 1, d)

    def forward(self, x, c):
        return self.lin(torch.cat([x, c[:, None] / 1000], 1))


@pytest.mark.parametrize("sde", SDES, ids=repr)
def test_lognormal_noise_levels_have_edm_moments_through_the_sde(sde):
    like = torch.zeros(1, dtype=torch.float64)
    t = sample_time_lognormal(sde, 100_000, eps=1e-5, generator=torch.Generator().manual_seed(0), like=like)
    log_sigma = sde.sigma(t).log()
    inside = (t > 1e-5) & (t < sde.T)  # the clipped tails sit at the SDE's own range
    assert float(inside.double().mean()) > 0.97
    # median of ln sigma is P_mean (clipping moves only tails); the quartiles are P_mean +- 0.674 P_std
    q = torch.quantile(log_sigma, torch.tensor([0.25, 0.5, 0.75], dtype=torch.float64))
    torch.testing.assert_close(q, torch.tensor([-1.2 - 0.809, -1.2, -1.2 + 0.809], dtype=torch.float64), atol=0.02,
                               rtol=0)  # fmt: skip


@pytest.mark.parametrize("sde", SDES, ids=repr)
def test_edm_weighting_is_one_over_c_out_squared_on_the_denoiser_error(sde):
    sd = 0.6
    model = ScoreModel(Lin().double(), sde, prediction="edm", sigma_data=sd)
    x0 = sd * torch.randn(256, 2, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    kw = dict(weighting="edm", noise="lognormal", sigma_data=sd, eps=1e-5)
    loss, t = dsm_loss_per_sample(sde, model, x0, generator=torch.Generator().manual_seed(2), return_time=True, **kw)
    gen = torch.Generator().manual_seed(2)  # the same draws again: t, then z
    t2 = sample_time_lognormal(sde, 256, eps=1e-5, generator=gen, like=x0)
    z = torch.randn(x0.shape, generator=gen, dtype=x0.dtype)
    torch.testing.assert_close(t, t2)
    x_t = sde.perturb(x0, t, z)
    sigma = sde.sigma(t)
    c_out2 = (sigma * sd) ** 2 / (sigma**2 + sd**2)
    expected = ((model.denoise(x_t, t) - x0) ** 2).mean(1) / c_out2
    torch.testing.assert_close(loss, expected, rtol=1e-6, atol=1e-8)


def test_uncertainty_weighting_starts_at_the_plain_loss_and_learns():
    sde = VPSDE()
    model = ScoreModel(Lin(), sde, prediction="edm", sigma_data=1.0)
    x0 = torch.randn(128, 2, generator=torch.Generator().manual_seed(0))
    plain = DSMObjective(weighting="edm", noise="lognormal")
    edm2 = DSMObjective(weighting="edm", noise="lognormal", uncertainty=True)
    a = plain(model, x0, torch.Generator().manual_seed(3))
    b = edm2(model, x0, torch.Generator().manual_seed(3))
    torch.testing.assert_close(a, b)  # u = 0 at the start
    b.backward()
    assert edm2.logvar.linear.weight.grad.abs().sum() > 0
    assert "uncertainty=True" in repr(edm2)


def test_uncertainty_head_minimum_is_the_log_of_the_loss():
    # min_u L e^-u + u is at u = log L: the head learns the per-level loss (EDM2 sec. 5.1)
    head = LogVarianceHead(16)
    opt = torch.optim.Adam(head.parameters(), lr=0.05)
    sigma = torch.full((64,), 0.5)
    for _ in range(400):
        u = head(sigma)
        loss = (3.0 / u.exp() + u).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert float(head(sigma[:1]).detach()) == pytest.approx(math.log(3.0), abs=0.02)


def test_trainer_trains_and_checkpoints_the_uncertainty_head(tmp_path):
    sde = VPSDE()
    model = ScoreModel(Lin(), sde, prediction="edm", sigma_data=1.0)
    objective = DSMObjective(weighting="edm", noise="lognormal", uncertainty=True)
    config = TrainConfig(steps=5, batch_size=16, warmup_steps=0, objective=objective, checkpoint_every=5)
    data = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
    trainer = Trainer(model, data, config, run_dir=tmp_path, progress=False)
    trainer.fit()
    assert objective.logvar.linear.weight.abs().sum() > 0
    state = torch.load(next((tmp_path / "checkpoints").glob("*.pt")), weights_only=False)
    torch.testing.assert_close(state["objective"]["logvar.linear.weight"], objective.logvar.linear.weight)
    assert float(state["model"]["sigma_data"]) == 1.0


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"weighting": "snr"}, "weighting"),
        ({"noise": "beta"}, "noise"),
        ({"noise": "lognormal", "p_std": 0.0}, "p_std"),
        ({"noise": "lognormal", "p_mean": math.nan}, "p_mean"),
        ({"weighting": "edm", "sigma_data": -1.0}, "sigma_data"),
        ({"weighting": "edm", "sigma_data": math.inf}, "sigma_data"),
        ({"weighting": "edm", "noise": "lognormal", "importance_sampling": True}, "importance_sampling"),
        ({"uncertainty": "yes"}, "uncertainty"),
        ({"eps": 0.0}, "eps"),
    ],
)
def test_bad_objective_settings_are_refused_at_construction(options, match):
    with pytest.raises(ValueError, match=match):
        DSMObjective(**options)


def test_edm_weighting_without_sigma_data_is_refused():
    x0 = torch.zeros(4, 2)
    with pytest.raises(ValueError, match="sigma_data"):
        dsm_loss(VPSDE(), lambda x, t: x, x0, weighting="edm")


# ----------------------------------------------------------------------------------------------------- EMA
def test_halflife_ema_rate_is_edm_with_rampup():
    model = nn.Linear(1, 1)
    ema = HalfLifeEMA(model, 1000.0, rampup=0.05, batch_size=10)
    assert ema.rate() == pytest.approx(0.5 ** (10 / 0.5))  # n = 1: half-life 1 * 10 * 0.05 = 0.5 images
    ema.num_updates = 10_000
    assert ema.rate() == pytest.approx(0.5 ** (10 / 1000))  # ramp over: the half-life itself
    # after h images at the full half-life the weight of the oldest update has halved
    assert ema.rate() ** (1000 / 10) == pytest.approx(0.5)


def test_power_ema_sigma_rel_round_trip_and_profile():
    for s in (0.05, 0.10, 0.2):
        assert gamma_to_sigma_rel(sigma_rel_to_gamma(s)) == pytest.approx(s)
    # theta_n = n: the power EMA at step t is sum_tau w_tau tau with w ~ tau^gamma, i.e. ~ t (gamma+1)/(gamma+2)
    model = nn.Linear(1, 1, bias=False)
    ema = PowerEMA(model, 0.1)
    for n in range(1, 2001):
        model.weight.data.fill_(float(n))
        ema.update(model)
    g = ema.gamma
    assert float(ema.model.weight) == pytest.approx(2000 * (g + 1) / (g + 2), rel=2e-3)


def test_posthoc_reconstruction_recovers_a_tracked_profile():
    steps, rels = [500, 1000, 1500, 2000, 500, 1000, 1500, 2000], [0.05] * 4 + [0.10] * 4
    w = posthoc_coefficients(steps, rels, 2000, 0.10)
    np.testing.assert_allclose(w, np.eye(8)[7], atol=1e-6)  # asking for a stored snapshot returns it


def test_posthoc_average_of_power_emas_matches_a_directly_tracked_one():
    model = nn.Linear(1, 1, bias=False)
    emas = {s: PowerEMA(model, s) for s in (0.05, 0.10, 0.15)}
    states, steps, rels = [], [], []
    for n in range(1, 1601):
        model.weight.data.fill_(math.sin(n / 200.0))  # a wandering weight
        for e in emas.values():
            e.update(model)
        if n % 200 == 0:
            for s in (0.05, 0.15):
                states.append({k: v.clone() for k, v in emas[s].model.state_dict().items()})
                steps.append(n)
                rels.append(s)
    got = posthoc_average(states, steps, rels, 0.10)["weight"]
    assert float(got) == pytest.approx(float(emas[0.10].model.weight), abs=0.01)


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"ema_halflife": 0.0}, "ema_halflife"),
        ({"ema_halflife": math.inf}, "ema_halflife"),
        ({"ema_rampup": 1.0}, "ema_rampup"),
        ({"ema_sigma_rel": 0.3}, "ema_sigma_rel"),
        ({"ema_sigma_rel": 0.05, "ema_halflife": 100.0}, "at most one"),
        ({"ema_decay": 1.0}, "ema_decay"),
    ],
)
def test_bad_ema_settings_are_refused(options, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig(**options)


def test_make_ema_picks_the_profile():
    model = nn.Linear(1, 1)
    assert type(make_ema(model, decay=0.9, warmup=True)) is EMA
    assert type(make_ema(model, decay=0.9, warmup=True, halflife=100.0, batch_size=4)) is HalfLifeEMA
    assert type(make_ema(model, decay=0.9, warmup=True, sigma_rel=0.05)) is PowerEMA


def test_resume_restores_the_uncertainty_head_exactly(tmp_path):
    def trainer(run_dir, steps):
        torch.manual_seed(0)
        model = ScoreModel(Lin(), VPSDE(), prediction="edm", sigma_data=1.0)
        objective = DSMObjective(weighting="edm", noise="lognormal", uncertainty=True)
        config = TrainConfig(steps=steps, batch_size=16, warmup_steps=0, objective=objective, checkpoint_every=2)
        data = torch.randn(64, 2, generator=torch.Generator().manual_seed(0))
        return Trainer(model, data, config, run_dir=run_dir, progress=False), objective

    straight, head = trainer(tmp_path / "a", 4)
    straight.fit()
    first, _ = trainer(tmp_path / "b", 2)
    first.fit()
    resumed, head2 = trainer(tmp_path / "b", 4)
    resumed.resume(next((tmp_path / "b" / "checkpoints").glob("*.pt")))
    resumed.fit()
    torch.testing.assert_close(head2.logvar.linear.weight, head.logvar.linear.weight)
