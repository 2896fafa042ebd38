"""conf/solver/*.yaml map one-to-one onto solver constructors and every solver name is a registered class."""

from pathlib import Path

import pytest
import yaml

import scoresde
from scoresde._instantiate import instantiate
from scoresde.oracle import Gaussian
from scoresde.solvers import SOLVERS, Solver

CONF = Path(__file__).resolve().parents[2] / "conf" / "solver"


@pytest.mark.parametrize("path", sorted(CONF.glob("*.yaml")), ids=lambda p: p.stem)
def test_config_builds_a_solver_that_samples(path):
    solver = instantiate(yaml.safe_load(path.read_text()))
    assert isinstance(solver, Solver)
    sde = scoresde.VPSDE()
    data = Gaussian([0.0, 0.0], std=0.5)
    x, info = scoresde.sample(sde, data.score_fn(sde), (3, 2), solver=solver, steps=3)
    assert x.shape == (3, 2) and info.nfe > 0


def test_every_registered_name_constructs_with_defaults():
    for name, cls in SOLVERS.items():
        assert isinstance(cls(), Solver), name
