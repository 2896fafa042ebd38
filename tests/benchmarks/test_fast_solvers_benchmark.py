"""benchmarks/fast_solvers.py: random problem families, disjoint splits and the summary's target counts."""

import math
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))
import fast_solvers  # noqa: E402

from scoresde.oracle import Gaussian, GaussianMixture  # noqa: E402


def test_problems_are_random_families_fixed_by_their_seed():
    kinds = [type(fast_solvers.draw_problem(s)[1]) for s in range(1000, 1006)]
    assert kinds == [Gaussian, GaussianMixture] * 3
    dims = {fast_solvers.draw_problem(s)[1].dim for s in range(1000, 1012)}
    assert len(dims) > 3 and all(2 <= d <= 128 for d in dims)
    a, b = fast_solvers.draw_problem(1001)[1], fast_solvers.draw_problem(1001)[1]
    torch.testing.assert_close(a.sample(5, generator=torch.Generator().manual_seed(0)),
                               b.sample(5, generator=torch.Generator().manual_seed(0)))  # fmt: skip
    dtype = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)  # the benchmark runs under float64: the draws must not depend on it
    try:
        assert fast_solvers.draw_problem(1002)[0] == (desc := fast_solvers.draw_problem(1002)[0])
    finally:
        torch.set_default_dtype(dtype)
    assert fast_solvers.draw_problem(1002)[0] == desc


def test_splits_are_disjoint():
    sel, held = fast_solvers.SPLITS["selection"], fast_solvers.SPLITS["heldout"]
    assert sel + 1000 <= held


def test_report_counts_the_targets():
    def row(family, method, err, sde="vp"):
        return dict(seed=1000, problem="p", sde=sde, budget=6, family=family, method=method, nfe=6, rmse=err)

    rows = [row("scoresde", "unipc", 3.0), row("unipc", "data_prediction bh1 order=3 logSNR", 2.0),
            row("k-diffusion", "dpm_2 exponential", 0.5), row("optimized", "unipc", 0.4),
            row("scoresde", "unipc", 1.0, "ve"), row("unipc", "data_prediction bh1 order=3 logSNR", 2.0, "ve"),
            row("optimized", "unipc", math.nan, "ve")]  # fmt: skip
    cols = fast_solvers.columns(rows, 1000, "vp", 6)
    assert cols == {"defaults": 3.0, "recommended": 2.0, "hindsight": 0.5, "optimized": 0.4}
    (line,) = [x for x in fast_solvers.report(rows, [6], "heldout") if x.startswith("| 6 |")]
    assert line == "| 6 | 1.50, 1.50, 2/2 | 0.80, 0.80, 1/1 |"
