"""Write the committed agreement fixtures: the official DPM-Solver and UniPC code's outputs on oracle problems.

    SCORESDE_REFERENCE_ROOT=SNAPSHOTS_DIR PYTHONPATH=. python benchmarks/reference_agreement.py

runs each configuration of ``PAIRS`` with the official code at the commits pinned in
:data:`reference_solvers.SOURCES` (exact oracle score, float64, nfe = 12, from x_T to eps = 1e-3 on the 8-D
anisotropic Gaussian under VP, sub-VP and VE) and stores x_T and their outputs, with the pinned commits and the
provenance record, in ``tests/benchmarks/fixtures/reference_agreement.pt``. tests/benchmarks/test_reference_solvers.py
checks scoresde against that file in every CI run (no snapshot needed) and, where a snapshot is present, against
the live code too.
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import provenance  # noqa: E402
import reference_solvers  # noqa: E402

import scoresde  # noqa: E402
from scoresde.oracle import anisotropic_gaussian  # noqa: E402

FIXTURE = Path(__file__).resolve().parents[1] / "tests" / "benchmarks" / "fixtures" / "reference_agreement.pt"
NFE, EPS = 12, 1e-3
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
SDES = {"vp": lambda: scoresde.VPSDE(), "subvp": lambda: scoresde.SubVPSDE(), "ve": lambda: scoresde.VESDE(0.01, 8.0)}


def problem(sde: scoresde.SDE) -> tuple:
    """The exact score and the x_T (6 draws of the 8-D Gaussian's marginal at T) of the agreement check."""
    data = anisotropic_gaussian(8)
    x_T = data.marginal(sde, sde.T).sample(6, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    return data.score_fn(sde), x_T


def their_outputs(modules: dict, sde: scoresde.SDE) -> dict[str, torch.Tensor]:
    """The official code's x_eps for every configuration of ``PAIRS`` (float64 default dtype while they run; build
    ``sde`` under it too, or its constants stay float32)."""
    dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # their time grids are built in the default dtype
    try:
        score, x_T = problem(sde)
        runs = {config: run for _, config, run in reference_solvers.runs(modules, sde, score, NFE, EPS)}
        out = {}
        for config in PAIRS:
            x, spent = runs[config](x_T)
            if spent != NFE:
                raise RuntimeError(f"{config} spent {spent} evaluations, not {NFE}")
            out[config] = x.detach().clone()
        return out
    finally:
        torch.set_default_dtype(dtype)


def main() -> None:
    modules = {k: v for k, v in reference_solvers.load().items() if k in ("dpm-solver", "unipc")}
    if len(modules) < 2:
        raise SystemExit("set SCORESDE_REFERENCE_ROOT to snapshots of LuChengTHU/dpm-solver and wl-zhao/UniPC")
    fixture = {
        "commits": {k: reference_solvers.SOURCES[k][1] for k in modules},
        "nfe": NFE,
        "eps": EPS,
        "x_T": {name: problem(make())[1] for name, make in SDES.items()},
        "outputs": {name: their_outputs(modules, make()) for name, make in SDES.items()},
        "provenance": {k: str(v) for k, v in provenance.record(threads=torch.get_num_threads()).items()},
    }
    FIXTURE.parent.mkdir(parents=True, exist_ok=True)
    torch.save(fixture, FIXTURE)
    print(f"wrote {FIXTURE} ({len(PAIRS)} configurations x {len(SDES)} SDEs)")


if __name__ == "__main__":
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)  # SDE constants and their time grids in float64
    main()
