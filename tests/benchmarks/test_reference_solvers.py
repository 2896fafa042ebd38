"""scoresde's DPM-Solver(++) and UniPC against the official code, where its snapshot is on this machine.

The official code is extracted at run time from /work/.mirror (benchmarks/reference_solvers.py) and never committed;
without the snapshot the test is skipped. Same algorithm, same grid, same exact score: agreement to round-off.
"""

import sys
from pathlib import Path

import pytest
import torch

import scoresde
from scoresde.oracle import anisotropic_gaussian

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import reference_solvers  # noqa: E402

DATA, NOISE = {"prediction": "data"}, {"prediction": "noise"}
PAIRS = {  # their configuration -> our options (every option spelled out: our defaults differ from theirs)
    "dpmsolver++ multistep order=3 logSNR": dict(order=3, grid="log_snr", lower_order_final=False, **DATA),
    "dpmsolver multistep order=2 time_uniform": dict(order=2, grid="uniform", lower_order_final=False, **NOISE),
    "dpmsolver++ singlestep order=3 time_uniform": dict(order=3, method="singlestep", grid="uniform", **DATA),
    "dpmsolver singlestep order=2 time_quadratic": dict(order=2, method="singlestep", grid="quadratic", **NOISE),
    "data_prediction bh1 order=3 logSNR": dict(solver="unipc", order=3, variant="bh1", grid="log_snr", **DATA),
    "noise_prediction bh2 order=2 time_quadratic": dict(
        solver="unipc", order=2, variant="bh2", grid="quadratic", **NOISE
    ),  # fmt: skip
}


@pytest.fixture(scope="module")
def modules():
    found = {k: v for k, v in reference_solvers.load().items() if k in ("dpm-solver", "unipc")}
    if len(found) < 2:
        pytest.skip("no snapshot of LuChengTHU/dpm-solver or wl-zhao/UniPC under /work/.mirror")
    return found


@pytest.mark.parametrize("sde", [scoresde.VPSDE(), scoresde.SubVPSDE(), scoresde.VESDE(0.01, 8.0)], ids=repr)
def test_agrees_with_the_official_code(modules, sde):
    dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # their time grids are built in the default dtype
    try:
        data = anisotropic_gaussian(8)
        score = data.score_fn(sde)
        x_T = data.marginal(sde, sde.T).sample(6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
        runs = {config: run for _, config, run in reference_solvers.runs(modules, sde, score, 12, 1e-3)}
        for config, options in PAIRS.items():
            theirs, spent = runs[config](x_T)
            options = {"solver": "dpm_solver"} | options
            ours, info = scoresde.sample(sde, score, None, start=x_T, nfe=12, denoise=False, **options)
            assert spent == info.nfe == 12  # at 12 >= 10 steps their 3M keeps order 3 to the end
            torch.testing.assert_close(ours, theirs, rtol=1e-11, atol=1e-11, msg=config)
    finally:
        torch.set_default_dtype(dtype)
