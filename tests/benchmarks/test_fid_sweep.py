"""benchmarks/fid_sweep.py end to end: a tiny trained checkpoint, two solvers x two step counts, then a resume."""

import csv
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def _run(args, cwd, env_cache):
    env = {"SCORESDE_CACHE": str(env_cache), "PATH": "/usr/bin:/bin", "HYDRA_FULL_ERROR": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    """A 20-step MLP on the eight-Gaussians oracle data, trained by the real CLI (a few seconds)."""
    run_dir = tmp_path_factory.mktemp("tiny_run")
    _run(
        ["-m", "scoresde.train", "data=eight_gaussians", "model=mlp", "model.net.width=32", "model.net.num_blocks=1",
         "train.steps=20", "train.sample_every=0", "train.checkpoint_every=20", "sample.n=8", "sample.steps=4",
         "eval.n_test=0", "device=cpu", "threads=1", "progress=false", f"hydra.run.dir={run_dir}"],
        ROOT, run_dir / "cache",
    )  # fmt: skip
    return run_dir


def test_sweep_end_to_end_and_resume(tiny_checkpoint, tmp_path):
    out = tmp_path / "sweep"
    args = ["benchmarks/fid_sweep.py", "-m", f"ckpt={tiny_checkpoint}", "solver=euler_maruyama,ancestral",
            "steps=3,6", "num_samples=100", "kid_subsets=5", "progress=false", f"out_dir={out}",
            f"hydra.sweep.dir={tmp_path / 'multirun'}"]  # fmt: skip
    log = _run(args, ROOT, tmp_path / "cache")
    points = sorted((out / "points").glob("*.json"))
    assert len(points) == 4
    records = [json.loads(p.read_text()) for p in points]
    assert {(r["label"], r["steps"]) for r in records} == {
        (s, n) for s in ("euler_maruyama", "ancestral") for n in (3, 6)
    }
    for r in records:
        assert r["nfe"] == r["steps"] + 1  # one score call per step plus the denoising step
        assert r["fid"] > r["floor_fid"] >= 0 and r["nll"] is not None and r["num_samples"] == 100
        assert r["commit"] and r["machine"] and r["command"].startswith("python benchmarks/fid_sweep.py -m ckpt=RUN ")
        assert r["ckpt"].startswith("RUN/checkpoints/") and len(r["ckpt_sha256"]) == 64
    assert all(str(tmp_path) not in p.read_text() and str(tiny_checkpoint) not in p.read_text() for p in points)
    assert all("hydra.sweep.dir=SWEEP_DIR" in json.loads(p.read_text())["command"] for p in points)
    with (out / "fid_sweep.csv").open() as f:
        assert len(list(csv.DictReader(f))) == 4
    assert (out / "fid_sweep.png").stat().st_size > 0
    table = (out / "fid_sweep.md").read_text()
    assert table.count("| euler_maruyama |") == 2 and "FID floor" in table
    assert "job 4/4" in log
    # a rerun with one more step count skips the four finished points (untouched) and computes two new ones
    mtimes = [p.stat().st_mtime_ns for p in points]
    log = _run([a if not a.startswith("steps=") else "steps=3,6,9" for a in args], ROOT, tmp_path / "cache")
    assert log.count("already done") == 4 and "job 6/6" in log
    assert [p.stat().st_mtime_ns for p in points] == mtimes
    assert len(list((out / "points").glob("*.json"))) == 6
