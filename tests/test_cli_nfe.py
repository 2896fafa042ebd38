"""The ``nfe=`` budget from the command line: python -m scoresde.sample and benchmarks/fid_sweep.py."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(args, cwd=ROOT):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    run_dir = tmp_path_factory.mktemp("tiny_nfe_run")
    _run(["-m", "scoresde.train", "data=eight_gaussians", "model=mlp", "model.net.width=16", "model.net.num_blocks=1",
          "train.steps=6", "train.batch_size=64", "train.checkpoint_every=6", "train.sample_every=0", "sample.n=8",
          "sample.steps=4", "eval.n_test=0", "threads=1", "progress=false", "device=cpu",
          f"hydra.run.dir={run_dir}"])  # fmt: skip
    return run_dir


@pytest.mark.parametrize(("solver", "nfe", "spent"), [("dpm_solver", 7, 7), ("edm_heun", 7, 6)])
def test_sample_cli_takes_a_budget(tiny_run, tmp_path, solver, nfe, spent):
    out = tmp_path / "sampled"
    _run(["-m", "scoresde.sample", f"ckpt={tiny_run}", f"solver={solver}", "n=10", f"nfe={nfe}",
          f"hydra.run.dir={out}"])  # fmt: skip
    with np.load(out / "samples.npz") as f:
        assert f["samples"].shape == (10, 2) and np.isfinite(f["samples"]).all()
        assert int(f["nfe"]) == spent + 1  # the final denoising call is outside the budget


def test_fid_sweep_takes_a_budget(tiny_run, tmp_path):
    out = tmp_path / "sweep"
    _run(["benchmarks/fid_sweep.py", "-m", f"ckpt={tiny_run}", "solver=unipc", "nfe=4,6", "num_samples=60",
          "kid_subsets=3", "progress=false", f"out_dir={out}", f"hydra.sweep.dir={tmp_path / 'multirun'}",
          f"cache_dir={tmp_path / 'cache'}"])  # fmt: skip
    records = sorted((json.loads(p.read_text()) for p in (out / "points").glob("*.json")), key=lambda r: r["nfe"])
    assert [(r["nfe_requested"], r["nfe"], r["steps"]) for r in records] == [(4, 5, 4), (6, 7, 6)]
    assert all("_nfe" in p.name for p in (out / "points").glob("*.json"))
