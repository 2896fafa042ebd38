"""EDM preconditioning as a parameterisation (prediction="edm"), against closed forms for every linear SDE."""

import math

import pytest
import torch
from torch import nn

from scoresde import VESDE, VPSDE, SubVPSDE
from scoresde.models import ScoreModel
from scoresde.models.parameterization import EDMPrediction, measure_sigma_data
from scoresde.oracle import Gaussian, anisotropic_gaussian

SDES = [VPSDE(), SubVPSDE(), VESDE(0.01, 20.0)]
TIMES = torch.tensor([1e-3, 0.05, 0.3, 0.7, 1.0], dtype=torch.float64)


class Zero(nn.Module):
    """F = 0: the ideal network for isotropic Gaussian data of std sigma_data (D* = c_skip x^)."""

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.zeros((), dtype=torch.float64))

    def forward(self, x, c):
        return self.w * x


class IdealF(nn.Module):
    """F* = (D_oracle(x^; sigma) - c_skip x^) / c_out, recovered from the network's inputs (c_in x, 999 t / T)."""

    def __init__(self, oracle, sde, sigma_data) -> None:
        super().__init__()
        self.oracle, self.sde, self.sd = oracle, sde, sigma_data
        self.w = nn.Parameter(torch.zeros((), dtype=torch.float64))

    def forward(self, x_in, c):
        t = c * (self.sde.T / 999)
        m, s = self.sde.mean_scale(t)[:, None], self.sde.std(t)[:, None]
        x = x_in * torch.sqrt(s**2 + m**2 * self.sd**2)  # undo c_in
        x0_hat = (x + s**2 * self.oracle.score(self.sde, x, t)) / m  # Tweedie: E[x_0 | x_t]
        c_skip, c_out, _ = EDMPrediction(self.sd).coefficients(s / m)
        return (x0_hat - c_skip * x / m) / c_out + self.w


@pytest.mark.parametrize("sde", SDES, ids=repr)
def test_zero_network_is_the_exact_score_of_isotropic_gaussian_data(sde):
    sd = 0.7
    oracle = Gaussian(torch.zeros(3), std=sd)
    model = ScoreModel(Zero(), sde, prediction="edm", sigma_data=sd)
    for t in TIMES:
        x = oracle.marginal(sde, float(t)).sample(64, generator=torch.Generator().manual_seed(0)).double()
        exact = oracle.score(sde, x, t)
        torch.testing.assert_close(model(x, t), exact, rtol=1e-10, atol=1e-8)
        torch.testing.assert_close(model.denoise(x, t), (x + sde.std(t) ** 2 * exact) / sde.mean_scale(t))


@pytest.mark.parametrize("sde", SDES, ids=repr)
def test_ideal_network_gives_the_oracle_score_for_anisotropic_data(sde):
    oracle = anisotropic_gaussian(4)
    sd = 0.5
    model = ScoreModel(IdealF(oracle, sde, sd), sde, prediction="edm", sigma_data=sd)
    for t in TIMES:
        x = oracle.marginal(sde, float(t)).sample(32, generator=torch.Generator().manual_seed(1)).double()
        torch.testing.assert_close(model(x, t), oracle.score(sde, x, t), rtol=1e-6, atol=1e-6)


def test_coefficients_are_edm_table_1():
    sigma, sd = torch.tensor([0.002, 0.5, 80.0], dtype=torch.float64), 0.5
    c_skip, c_out, c_in = EDMPrediction(sd).coefficients(sigma)
    torch.testing.assert_close(c_skip, sd**2 / (sigma**2 + sd**2))
    torch.testing.assert_close(c_out, sigma * sd / (sigma**2 + sd**2).sqrt())
    torch.testing.assert_close(c_in, 1 / (sigma**2 + sd**2).sqrt())
    # the effective training target of F has unit variance for data of std sd: c_skip^2 sd^2 ... (EDM eq. 135)
    torch.testing.assert_close(((1 - c_skip) ** 2 * sd**2 + c_skip**2 * sigma**2) / c_out**2, torch.ones(3).double())


def test_network_input_has_unit_variance_through_the_sde():
    sde, sd = VPSDE(), 0.3
    model = ScoreModel(Zero(), sde, prediction="edm", sigma_data=sd)
    t = torch.tensor([0.01, 0.5, 1.0], dtype=torch.float64)
    m, s = sde.mean_scale(t), sde.std(t)
    torch.testing.assert_close(model.input_scale(t) ** 2 * (m**2 * sd**2 + s**2), torch.ones(3).double())


def test_edm_output_stays_at_the_data_scale_at_t_equal_T():
    # eps prediction's x0 estimate (x - s eps) / m amplifies eps errors by 1/m(T) ~ 150 under VP; EDM's D is
    # c_skip x / m + c_out F with c_skip / m ~ 0.007 and c_out ~ sigma_data at t = T
    sde = VPSDE()
    wrapped = lambda x, c: torch.ones_like(x)  # noqa: E731  (any network with |F| <= 1)
    edm = ScoreModel(wrapped, sde, prediction="edm", sigma_data=1.0)
    x = 4.6 * torch.ones(8, 2, dtype=torch.float64)  # a tail draw of the prior
    m, s = sde.mean_scale(1.0).double(), sde.std(1.0).double()
    c_skip, c_out, _ = EDMPrediction(1.0).coefficients(s / m)
    bound = float(c_skip * 4.6 / m + c_out)
    assert float(edm.denoise(x, 1.0).abs().max()) <= bound + 1e-6 and bound < 1.05


def test_sigma_data_is_a_buffer_and_old_predictions_keep_their_state_dict():
    edm = ScoreModel(Zero(), VPSDE(), prediction="edm", sigma_data=0.25)
    assert float(edm.state_dict()["sigma_data"]) == 0.25
    eps = ScoreModel(Zero(), VPSDE(), prediction="eps")
    assert "sigma_data" not in eps.state_dict()  # checkpoints written before stay loadable
    fresh = ScoreModel(Zero(), VPSDE(), prediction="edm", sigma_data=1.0)
    fresh.load_state_dict(edm.state_dict())
    assert float(fresh.sigma_data) == 0.25
    assert "sigma_data=0.25" in repr(edm)


def test_measure_sigma_data_is_the_data_std():
    data = 3.0 * torch.randn(5000, 2, generator=torch.Generator().manual_seed(0))
    assert measure_sigma_data(data) == pytest.approx(3.0, rel=0.03)


@pytest.mark.parametrize("bad", [0.0, -1.0, math.nan, math.inf, "big", True])
def test_bad_sigma_data_is_refused_naming_it(bad):
    with pytest.raises(ValueError, match="sigma_data"):
        ScoreModel(Zero(), VPSDE(), prediction="edm", sigma_data=bad)


def test_edm_needs_sigma_data_and_input_scaling():
    with pytest.raises(ValueError, match="sigma_data"):
        ScoreModel(Zero(), VPSDE(), prediction="edm")
    with pytest.raises(ValueError, match="scale_input"):
        ScoreModel(Zero(), VPSDE(), prediction="edm", sigma_data=1.0, scale_input=False)
    with pytest.raises(ValueError, match="sigma_data"):
        measure_sigma_data(torch.zeros(10, 2))
