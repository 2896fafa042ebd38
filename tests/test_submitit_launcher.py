"""Sweeps through hydra's submitit launcher (optional extra ``cluster``), run with its local executor."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from test_cli_likelihood import _write_checkpoint

import scoresde
from scoresde.distributed import sample_sharded

pytest.importorskip("hydra_plugins.hydra_submitit_launcher")
ROOT = str(Path(__file__).resolve().parents[1])


@pytest.mark.slow
def test_sample_sweep_runs_as_submitit_local_jobs(tmp_path):
    ckpt = _write_checkpoint(tmp_path / "checkpoints", "mixture")
    sweep = tmp_path / "sweep"
    cmd = [sys.executable, "-m", "scoresde.sample", "-m", "hydra/launcher=submitit_local", f"ckpt={ckpt}",
           "solver=euler_maruyama", "steps=3,5", "n=4", "device=cpu", f"hydra.sweep.dir={sweep}"]  # fmt: skip
    proc = subprocess.run(cmd, cwd=tmp_path, capture_output=True, text=True, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT})  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert "Submitit 'local' sweep output dir" in proc.stdout + proc.stderr
    assert len(list((sweep / ".submitit").glob("*/*_result.pkl"))) == 2  # two jobs went through submitit
    model = scoresde.load_checkpoint(ckpt)
    for job, steps in ((0, 3), (1, 5)):
        with np.load(sweep / str(job) / "samples.npz") as f:
            x = torch.from_numpy(f["samples"])
        expected, _ = sample_sharded(model.sde, model.model, 4, model.event_shape, seed=0, batch_size=64,
                                     solver="euler_maruyama", steps=steps)  # fmt: skip
        torch.testing.assert_close(x, expected)
