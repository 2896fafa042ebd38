"""Consistency distillation from the exact score (teacher = oracle) learns the exact flow map; 1-step samples of the
oracle mixture put the right weight on each mode. Slow: each trains an MLP for 2,000 steps (about 2-4 minutes on
one shared thread)."""

import pytest
import torch

import scoresde
from scoresde.consistency import ConsistencyDistillation, ConsistencyModel
from scoresde.data import gaussian, mixture
from scoresde.models import MLP
from scoresde.training import TrainConfig, Trainer

pytestmark = pytest.mark.slow


def _distil(dataset, sde, steps=2000, seed=0):
    torch.manual_seed(seed)
    model = ConsistencyModel(MLP((2,), width=128, num_blocks=3), sde)
    objective = ConsistencyDistillation(dataset.oracle.score_fn(sde), N=18, mu=0.95)
    config = TrainConfig(steps=steps, batch_size=256, lr=2e-3, objective=objective, log_every=steps,
                         checkpoint_every=steps)  # fmt: skip
    trainer = Trainer(model, dataset.train, config, seed=seed, progress=False)
    trainer.fit()
    return trainer.ema.model


def test_cd_from_the_exact_score_learns_the_gaussian_flow_map():
    """Measured (VP, 2,000 steps, batch 256): relative error of f to the exact map x_t -> x_eps of 4 % at t = T,
    5 % at t = 0.5, 11 % at t = 0.1 and 0.5 % at t = 0.01 (where f is nearly the identity)."""
    sde, data = scoresde.VPSDE(), gaussian()
    model = _distil(data, sde)
    for t, bound in ((1.0, 0.08), (0.5, 0.1), (0.1, 0.2), (0.01, 0.02)):
        marginal = data.oracle.marginal(sde, t) if t < 1 else None
        gen = torch.Generator().manual_seed(2)
        x = marginal.sample(4000, generator=gen) if marginal else sde.prior_sampling((4000, 2), generator=gen)
        exact = data.oracle.flow(sde, x.double(), t, 1e-3).float()
        with torch.no_grad():
            error = float((model(x, t) - exact).norm() / exact.norm())
        assert error < bound, (t, error)


def test_one_step_samples_weight_the_mixture_modes_right():
    sde, data = scoresde.VPSDE(), mixture()
    model = _distil(data, sde)
    x, info = scoresde.sample(sde, model, (10000, 2), solver="consistency", steps=1,
                              generator=torch.Generator().manual_seed(3))  # fmt: skip
    assert info.nfe == 1
    modes = data.oracle.responsibilities(None, x.double()).argmax(1)
    share = torch.bincount(modes, minlength=3).double() / len(modes)
    torch.testing.assert_close(share, torch.tensor([0.5, 0.3, 0.2], dtype=torch.float64), atol=0.04, rtol=0)
