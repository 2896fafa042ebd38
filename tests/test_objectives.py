"""The training objectives against the closed-form minima of Gaussian data (the oracle's exact eps / score)."""

import pytest
import torch
from torch import nn

from scoresde import VESDE, VPSDE, SubVPSDE
from scoresde.models import ScoreModel
from scoresde.training.objectives import DDPMObjective, DSMObjective, NCSNObjective

MEAN = torch.tensor([0.5, -0.5], dtype=torch.float64)
VAR = torch.tensor([0.09, 1.44], dtype=torch.float64)


def _data(n=60000, seed=0):
    return MEAN + VAR.sqrt() * torch.randn(n, 2, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)


class OracleDDPMEps(nn.Module):
    """E[z | x_i] for x_i = sqrt(abar_i) x_0 + sqrt(1 - abar_i) z and x_0 ~ N(MEAN, diag VAR); input is the level."""

    def __init__(self, betas):
        super().__init__()
        self.abar = torch.cumprod(1 - betas, 0)

    def forward(self, x, level):
        a = self.abar[level.round().long()][:, None]
        return (1 - a).sqrt() * (x - a.sqrt() * MEAN) / (a * VAR + 1 - a)


class OracleNCSNScore(nn.Module):
    """grad log N(x; MEAN, VAR + sigma_i^2) for level i."""

    def __init__(self, sigmas):
        super().__init__()
        self.sigmas = sigmas

    def forward(self, x, level):
        s2 = self.sigmas[level.round().long()][:, None] ** 2
        return -(x - MEAN) / (VAR + s2)


def test_ddpm_objective_at_the_oracle_eps_equals_the_closed_form_minimum():
    sde, n_levels = VPSDE(), 1000
    betas = sde.discrete_betas(n_levels)
    model = ScoreModel(OracleDDPMEps(betas), sde, prediction="eps", time_input="discrete", num_levels=n_levels)
    per_level = (1 - (1 - (a := torch.cumprod(1 - betas, 0)))[:, None] / (a[:, None] * VAR + 1 - a[:, None])).mean(1)
    loss = DDPMObjective()(model, _data(), torch.Generator().manual_seed(1))
    assert float(loss) == pytest.approx(float(per_level.mean()), abs=0.01)
    # a wrong level mapping (level i + 100) costs more (same noise: common random numbers)
    shifted = ScoreModel(OracleDDPMEps(torch.cat([betas[100:], betas[-1:].repeat(100)])), sde, time_input="discrete")
    assert float(DDPMObjective()(shifted, _data(), torch.Generator().manual_seed(1))) > float(loss) + 0.005


def test_ncsn_objective_at_the_oracle_score_equals_the_closed_form_minimum():
    sde, n_levels = VESDE(0.01, 5.0), 10
    sigmas = sde.discrete_sigmas(n_levels)
    model = ScoreModel(OracleNCSNScore(sigmas), sde, prediction="score", time_input="discrete", num_levels=n_levels,
                       scale_input=False)  # fmt: skip
    s2 = sigmas[:, None] ** 2
    minimum = 0.5 * (1 - s2 / (VAR + s2)).mean(1).mean()
    loss = NCSNObjective()(model, _data(), torch.Generator().manual_seed(2))
    assert float(loss) == pytest.approx(float(minimum), abs=0.01)


def test_dsm_objective_passes_its_options_on():
    sde = VPSDE()
    model = ScoreModel(OracleNCSNScore(torch.ones(1000)), sde, prediction="score")  # any score function
    x = _data(512)
    for options in ({}, {"weighting": "likelihood", "importance_sampling": True}):
        from scoresde import dsm_loss

        expected = dsm_loss(sde, model, x, generator=torch.Generator().manual_seed(3), **options)
        got = DSMObjective(**options)(model, x, torch.Generator().manual_seed(3))
        assert torch.equal(got, expected)


def test_discrete_objectives_name_what_they_need():
    net = OracleNCSNScore(torch.ones(1000))
    with pytest.raises(ValueError, match="time_input=discrete"):
        DDPMObjective()(ScoreModel(net, VPSDE()), _data(8))
    with pytest.raises(ValueError, match="sde=vp"):
        DDPMObjective()(ScoreModel(net, SubVPSDE(), time_input="discrete"), _data(8))
    with pytest.raises(ValueError, match="sde=ve"):
        NCSNObjective()(ScoreModel(net, VPSDE(), time_input="discrete"), _data(8))
    with pytest.raises(ValueError, match="prediction"):
        DDPMObjective()(ScoreModel(net, VPSDE(), prediction="x0", time_input="discrete"), _data(8))
