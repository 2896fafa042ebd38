"""Zero-shot editing (Algorithm 4) through scoresde.inpaint / colorize with method="consistency"."""

import pytest
import torch
from consistency_checks import ExactFlowMap, make_net

import scoresde
from scoresde.consistency import ConsistencyModel
from scoresde.oracle import anisotropic_gaussian, gaussian_mean_cov


def test_inpainting_keeps_the_observation_and_counts_calls(sde):
    data = anisotropic_gaussian(2)
    y = data.sample(500, generator=torch.Generator().manual_seed(0))
    mask = torch.tensor([True, False])
    x, info = scoresde.inpaint(sde, ExactFlowMap(data, sde), y, mask, method="consistency", steps=3,
                               generator=torch.Generator().manual_seed(1))  # fmt: skip
    assert torch.equal(x[:, 0], y[:, 0]) and info.nfe == 3 and info.extras["denoise"] is False
    assert torch.isfinite(x).all()
    # the missing coordinate follows the observed one: the data's correlation survives the edit
    assert torch.corrcoef(x.T)[0, 1] * torch.corrcoef(y.T)[0, 1] > 0


def test_nothing_observed_is_algorithm_1():
    """With an empty mask Algorithm 4 samples p_eps like Algorithm 1 (exact flow map: covariance of the data)."""
    sde, data = scoresde.VPSDE(), anisotropic_gaussian(2)
    y = torch.zeros(20000, 2)
    x, _ = scoresde.inpaint(sde, ExactFlowMap(data, sde), y, torch.tensor([False, False]), method="consistency",
                            steps=2, generator=torch.Generator().manual_seed(2))  # fmt: skip
    _, cov = gaussian_mean_cov(data.marginal(sde, 1e-3))
    assert float((torch.cov(x.T.double()) - cov).abs().max() / cov.diagonal().max()) < 0.05


def test_colorize_with_a_consistency_model():
    sde = scoresde.VPSDE()
    model = ConsistencyModel(make_net((3, 4, 4)), sde)
    gray = torch.rand(2, 1, 4, 4) * 2 - 1
    x, info = scoresde.colorize(sde, model, gray, method="consistency", steps=2)
    assert x.shape == (2, 3, 4, 4) and info.nfe == 2
    torch.testing.assert_close(x.mean(1, keepdim=True), gray, atol=1e-5, rtol=1e-5)


def test_kinds_must_agree():
    sde = scoresde.VPSDE()
    cm, sm = ConsistencyModel(make_net((2,)), sde), scoresde.ScoreModel(make_net((2,)), sde)
    y, mask = torch.zeros(2, 2), torch.tensor([True, False])
    with pytest.raises(TypeError, match="method='consistency'"):
        scoresde.inpaint(sde, cm, y, mask, steps=2)
    with pytest.raises(TypeError, match="ScoreModel"):
        scoresde.inpaint(sde, sm, y, mask, method="consistency", steps=2)
