"""The library's EDM recipe is NVlabs/edm's EDMLoss + EDMPrecond, step for step, on the same random draws.

benchmarks/training_recipes.py's ``lockstep`` trains ``edm_log_sigma`` (prediction=edm, c_noise = ln(sigma) / 4,
log-normal sigma, lambda = 1 / c_out^2) and NVlabs' own loss and preconditioner from one initialisation on the same
batches, ln sigma and z. Runs where a snapshot of NVlabs/edm is present (``SCORESDE_REFERENCE_ROOT``); the code is
never committed.
"""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import training_recipes  # noqa: E402
from provenance import reference_repo  # noqa: E402


@pytest.fixture(scope="module")
def edm_root():
    try:
        return reference_repo("NVlabs/edm", training_recipes.EDM_COMMIT)
    except (FileNotFoundError, ValueError) as err:
        pytest.skip(f"no snapshot of NVlabs/edm at the pinned commit: {err}")


@pytest.mark.parametrize("dataset", ["mixture", "gaussian8"])
@pytest.mark.parametrize("sde", ["vp", "subvp"])
def test_edm_recipe_trains_as_nvlabs_edm(edm_root, dataset, sde):
    out = training_recipes.lockstep(edm_root, dataset, sde, seed=0, steps=10)
    assert out["per_example_gap"] < 1e-4  # float32 rounding of sigma -> t -> s / m; a wrong weight is off by O(1)
    assert out["batch_loss_gap"] < 1e-5
    assert out["weight_change"] > 1e-2  # the weights moved, and moved together
    assert out["weight_gap"] < 1e-3
