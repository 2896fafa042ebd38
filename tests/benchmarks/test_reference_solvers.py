"""scoresde's DPM-Solver(++) and UniPC against the official code: same algorithm, same grid, same exact score.

The official outputs are committed in tests/benchmarks/fixtures/reference_agreement.pt, written by
benchmarks/reference_agreement.py from the official code at the commits pinned in benchmarks/reference_solvers.py,
so the agreement is checked in every run. Where snapshots are present (``SCORESDE_REFERENCE_ROOT``), the live code
is checked too. The code itself is never committed.
"""

import sys
from pathlib import Path

import pytest
import torch

import scoresde

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import reference_agreement  # noqa: E402
import reference_solvers  # noqa: E402

FIXTURE = torch.load(reference_agreement.FIXTURE, weights_only=True)


@pytest.fixture(autouse=True)
def float64_default():
    """SDEs built under a float32 default keep float32 constants (1e-8 off): build and run everything in float64."""
    dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(dtype)


def _ours(sde, config):
    score, x_T = reference_agreement.problem(sde)
    options = {"solver": "dpm_solver"} | reference_agreement.PAIRS[config]
    out, info = scoresde.sample(sde, score, None, start=x_T, nfe=reference_agreement.NFE, denoise=False, **options)
    assert info.nfe == reference_agreement.NFE  # at 12 >= 10 steps their 3M keeps order 3 to the end
    return out


def test_fixture_records_the_pinned_commits_and_the_problem():
    assert FIXTURE["commits"] == {k: reference_solvers.SOURCES[k][1] for k in ("dpm-solver", "unipc")}
    for name, make in reference_agreement.SDES.items():
        torch.testing.assert_close(FIXTURE["x_T"][name], reference_agreement.problem(make())[1], rtol=0, atol=0)
    assert "commit" in FIXTURE["provenance"] and "threads" in FIXTURE["provenance"]


@pytest.mark.parametrize("name", sorted(reference_agreement.SDES))
@pytest.mark.parametrize("config", sorted(reference_agreement.PAIRS))
def test_agrees_with_the_committed_official_outputs(name, config):
    ours = _ours(reference_agreement.SDES[name](), config)
    torch.testing.assert_close(ours, FIXTURE["outputs"][name][config], rtol=1e-11, atol=1e-11, msg=config)


@pytest.fixture(scope="module")
def modules():
    found = {k: v for k, v in reference_solvers.load().items() if k in ("dpm-solver", "unipc")}
    if len(found) < 2:
        pytest.skip("no snapshots of LuChengTHU/dpm-solver and wl-zhao/UniPC under $SCORESDE_REFERENCE_ROOT")
    return found


@pytest.mark.parametrize("name", sorted(reference_agreement.SDES))
def test_agrees_with_the_live_official_code(modules, name):
    sde = reference_agreement.SDES[name]()
    for config, theirs in reference_agreement.their_outputs(modules, sde).items():
        torch.testing.assert_close(_ours(sde, config), theirs, rtol=1e-11, atol=1e-11, msg=config)
