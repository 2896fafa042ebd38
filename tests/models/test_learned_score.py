"""End to end: an MLP trained by denoising score matching through the wrapper learns the oracle's score."""

import pytest
import torch

import scoresde
from scoresde.models import MLP, ScoreModel
from scoresde.oracle import Gaussian


@pytest.mark.parametrize("prediction", ["eps", "x0", "score"])
def test_dsm_trained_mlp_matches_the_exact_score(prediction):
    torch.manual_seed(0)
    sde = scoresde.VPSDE()
    data = Gaussian(torch.tensor([1.0, -0.5]), std=torch.tensor([0.5, 0.3]))
    model = ScoreModel(MLP((2,), width=64, num_blocks=2), sde, prediction=prediction)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    g = torch.Generator().manual_seed(0)
    for _ in range(200):
        loss = scoresde.dsm_loss(sde, model, data.sample(256, generator=g), eps=0.05, generator=g)
        opt.zero_grad()
        loss.backward()
        opt.step()
    # compare s(t) * score (the scale DSM trains at) on the noised marginals at several times
    t = torch.linspace(0.1, 0.9, 9).repeat_interleave(200)
    x = data.sample(t.shape[0], generator=g)
    x_t = sde.perturb(x, t, torch.randn(x.shape, generator=g))
    with torch.no_grad():
        err = (sde.std(t)[:, None] * (model(x_t, t) - data.score(sde, x_t, t))).pow(2).sum(1).mean()
    # an untrained (zero-output) model has error ~1.8 here; 200 steps reach ~0.01
    assert float(err) < 0.05
