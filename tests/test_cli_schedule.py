"""``python -m scoresde.schedule`` and ``grid=optimized`` in ``python -m scoresde.sample``, run as a user runs them."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(args, ok=True):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert (proc.returncode == 0) == ok, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc.stdout + proc.stderr


@pytest.fixture(scope="module")
def scheduled_run(tmp_path_factory):
    """A tiny trained run with a UniPC schedule at nfe=5 saved beside its checkpoint."""
    run_dir = tmp_path_factory.mktemp("tiny_schedule_run")
    _run(["-m", "scoresde.train", "data=eight_gaussians", "model=mlp", "model.net.width=16", "model.net.num_blocks=1",
          "train.steps=6", "train.batch_size=64", "train.checkpoint_every=6", "train.sample_every=0", "sample.n=8",
          "sample.steps=4", "eval.n_test=0", "threads=1", "progress=false", "device=cpu",
          f"hydra.run.dir={run_dir}"])  # fmt: skip
    out = _run(["-m", "scoresde.schedule", f"ckpt={run_dir}", "solver=unipc", "nfe=5", "pilots=8", "fine=16",
                "sweeps=1", f"hydra.run.dir={tmp_path_factory.mktemp('schedule_out')}"])  # fmt: skip
    return run_dir, out


def test_schedule_cli_saves_the_schedule_beside_the_checkpoint(scheduled_run):
    run_dir, out = scheduled_run
    (path,) = run_dir.glob("checkpoints/schedules/unipc_nfe5.json")
    state = json.loads(path.read_text())
    assert len(state["times"]) == 6 and state["solver"] == "unipc" and len(state["checkpoint"]) == 64
    assert f"pilot cost {state['pilot_evaluations']} score evaluations" in out


def test_sample_cli_walks_the_optimised_grid_with_the_variant_it_chose(scheduled_run, tmp_path):
    run_dir, _ = scheduled_run
    state = json.loads((run_dir / "checkpoints" / "schedules" / "unipc_nfe5.json").read_text())
    out = _run(["-m", "scoresde.sample", f"ckpt={run_dir}", "solver=unipc", "n=10", "nfe=5", "grid=optimized",
                f"hydra.run.dir={tmp_path}"])  # fmt: skip
    with np.load(tmp_path / "samples.npz") as f:
        assert f["samples"].shape == (10, 2) and np.isfinite(f["samples"]).all() and int(f["nfe"]) == 6
    used = out.split("optimised schedule (", 1)[1].split("\n", 1)[0]
    assert used.startswith("UniPC(") and all(f"{k}={v!r}" in used for k, v in state["options"].items())
    assert state["requested"]["variant"] == "auto"  # asked for the default; the file says what it chose


def test_fid_sweep_point_records_the_schedule_and_its_provenance(scheduled_run, tmp_path):
    run_dir, _ = scheduled_run
    state = json.loads((run_dir / "checkpoints" / "schedules" / "unipc_nfe5.json").read_text())
    _run(["benchmarks/fid_sweep.py", f"ckpt={run_dir}", "solver=unipc", "nfe=5", "grid=optimized", "num_samples=50",
          "kid_subsets=2", "kid_subset_size=20", "progress=false", f"out_dir={tmp_path / 'sweep'}",
          f"hydra.run.dir={tmp_path / 'run'}"])  # fmt: skip
    (point,) = (tmp_path / "sweep" / "points").glob("*.json")
    record = json.loads(point.read_text())
    assert record["label"] == "unipc@optimized" and record["nfe"] == 6
    assert record["schedule"]["options"] == state["options"] and record["schedule"]["times"] == state["times"]
    assert record["commit"] and record["machine"] and "fid_sweep.py" in record["command"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["solver=unipc", "nfe=6"], "no optimised schedule for solver=unipc nfe=6"),
        (["solver=unipc", "nfe=5", "solver.order=2"], "other solver options: order=2"),
        pytest.param(
            ["solver=dpm_solver", "nfe=5"], "no optimised schedule for solver=dpm_solver", marks=pytest.mark.slow
        ),
        pytest.param(["solver=unipc"], "grid=optimized needs nfe=N", marks=pytest.mark.slow),
        pytest.param(["solver=pc", "nfe=5"], "deterministic fixed-grid solver", marks=pytest.mark.slow),
    ],
)
def test_sample_cli_refuses_a_schedule_for_other_settings(scheduled_run, tmp_path, args, message):
    run_dir, _ = scheduled_run
    out = _run(["-m", "scoresde.sample", f"ckpt={run_dir}", "n=4", "grid=optimized", *args,
                f"hydra.run.dir={tmp_path}"], ok=False)  # fmt: skip
    assert message in out


@pytest.mark.parametrize(
    ("arg", "message"),
    [("budget=0", "budget must be an integer >= 1"), ("variants=maybe", "variants must be"),
     pytest.param("budget=100", "budget must be an integer >= ", marks=pytest.mark.slow)],
)  # fmt: skip
def test_schedule_cli_refuses_bad_search_settings(scheduled_run, tmp_path, arg, message):
    run_dir, _ = scheduled_run
    out = _run(["-m", "scoresde.schedule", f"ckpt={run_dir}", "solver=unipc", "nfe=5", arg,
                f"hydra.run.dir={tmp_path / 'out'}"], ok=False)  # fmt: skip
    assert message in out


def test_schedule_cli_refuses_a_stochastic_solver(tmp_path):
    out = _run(["-m", "scoresde.schedule", f"ckpt={tmp_path}", "solver=euler_maruyama", "nfe=5",
                f"hydra.run.dir={tmp_path / 'out'}"], ok=False)  # fmt: skip
    assert "deterministic fixed-grid solver" in out


def test_console_script_is_declared():
    assert 'scoresde-schedule = "scoresde.cli.schedule:main"' in (ROOT / "pyproject.toml").read_text()
