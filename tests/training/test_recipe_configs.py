"""conf/train: the new default (EDM preconditioning + EDM2 weighting) and the old recipes reachable by name."""

import pytest
import torch
from hydra import compose, initialize_config_dir

from scoresde._instantiate import build_score_model, instantiate
from scoresde.cli._runtime import CONF_DIR, plain_config
from scoresde.cli._settings import validate_train
from scoresde.data import mixture
from scoresde.models import ScoreModel


def _config(*overrides):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("config", overrides=["data=mixture", "model=mlp", *overrides])


@pytest.mark.parametrize(
    ("train", "prediction", "weighting", "noise"),
    [("default", "edm", "edm", "lognormal"), ("edm", "edm", "edm", "lognormal"),
     ("paper", "eps", "standard", "uniform"), ("likelihood", "edm", "likelihood", "uniform")],
)  # fmt: skip
def test_recipes_compose_and_build(train, prediction, weighting, noise):
    cfg = plain_config(_config(f"train={train}"))
    assert cfg["model"]["prediction"] == prediction
    objective = instantiate(cfg["train"]).objective
    assert (objective.weighting, objective.noise) == (weighting, noise)
    data = mixture(n_train=500, n_test=10)
    model = build_score_model(cfg["model"], instantiate(cfg["sde"]), data.event_shape, data=data.train)
    assert (model.sigma_data is not None) == (prediction == "edm")


@pytest.mark.parametrize("train", ["ddpm", "ncsn"])
def test_discrete_recipes_select_an_eps_model(train):
    cfg = plain_config(_config(f"train={train}", "model.time_input=discrete"))
    assert cfg["model"]["prediction"] == "eps" and cfg["model"]["sigma_data"] is None


def test_command_line_overrides_the_recipe_model_keys():
    cfg = plain_config(_config("train=paper", "model.prediction=x0"))
    assert cfg["model"]["prediction"] == "x0"


@pytest.mark.parametrize(
    ("override", "match"),
    [("model.sigma_data=-1", "model.sigma_data"), ("model.sigma_data=nan", "model.sigma_data"),
     ("train.objective.weighting=snr", "weighting"), ("train.objective.noise=beta", "noise"),
     ("train.ema_sigma_rel=0.5", "ema_sigma_rel"), ("train.ema_halflife=0", "ema_halflife"),
     ("eval.draws=0", "eval.draws")],
)  # fmt: skip
def test_bad_settings_are_named_before_the_first_step(override, match):
    with pytest.raises(ValueError, match=match):
        validate_train(_config(override))


def test_sigma_data_auto_needs_data():
    cfg = plain_config(_config())
    with pytest.raises(ValueError, match="sigma_data=auto"):
        build_score_model(cfg["model"], instantiate(cfg["sde"]), (2,))


class _Zero(torch.nn.Module):
    """F = 0: with EDM preconditioning, D = c_skip x^, the exact denoiser of N(0, sigma_data^2 I) data."""

    def __init__(self) -> None:
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x, c):
        return torch.zeros_like(x) + 0 * self.unused


@pytest.mark.parametrize("train", ["default", "edm"])
@pytest.mark.parametrize("sde", ["vp", "subvp", "ve"])
def test_recipe_loss_is_one_at_the_exact_denoiser_of_gaussian_data(train, sde):
    """lambda = 1 / c_out^2 on ||D - x0||^2 and D - x0 ~ N(0, c_out^2 I) at the exact denoiser: E[loss] = 1 at every
    noise level (EDM's unit-variance design, Karras et al. 2022, sec. 5), through every SDE; EDM2's u starts at 0."""
    cfg = plain_config(_config(f"train={train}", f"sde={sde}", "model.sigma_data=0.7"))
    objective = instantiate(cfg["train"]).objective
    model = ScoreModel(_Zero(), instantiate(cfg["sde"]), prediction="edm", sigma_data=0.7, time_input="log_sigma")
    x0 = 0.7 * torch.randn(20_000, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    loss = objective(model, x0, torch.Generator().manual_seed(1))
    assert float(loss) == pytest.approx(1.0, abs=0.03)  # per-example variance 1 (chi^2_2 / 2): s.e. 0.007
