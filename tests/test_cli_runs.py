"""Run directories from the command line: never shared, never mixed, resumed with their own settings, and no trace
left by a refused command (python -m scoresde.train / sample in subprocesses, tiny 2-D runs)."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from scoresde.training.checkpoint import CheckpointManager

ROOT = Path(__file__).resolve().parents[1]
TINY = ["data=gaussian", "data.dataset.n_train=256", "data.dataset.n_test=32", "model=mlp", "model.net.width=16",
        "model.net.num_blocks=1", "train.steps=6", "train.batch_size=32", "train.checkpoint_every=3",
        "train.log_every=2", "sample.n=8", "sample.steps=3", "solver=euler_maruyama", "eval.n_test=0",
        "progress=false", "device=cpu"]  # fmt: skip


def _cli(module, *args, cwd, ok=True):
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "SCORESDE_DEBUG")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))  # this checkout's scoresde, whatever is installed
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True, text=True)
    if ok:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    else:
        assert proc.returncode != 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert "Traceback" not in proc.stderr and proc.stderr.startswith("error: "), proc.stderr[-3000:]
    return proc


def _snapshot(run):
    """Every file of a run directory and its bytes."""
    return {p.relative_to(run): p.read_bytes() for p in sorted(run.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """One tiny run (likelihood weighting, lr 5e-4, checkpoints at steps 3 and 6) that each test copies."""
    where = tmp_path_factory.mktemp("trained")
    _cli("scoresde.train", *TINY, "train=likelihood", "train.lr=5e-4", f"hydra.run.dir={where / 'run'}", cwd=where)
    return where / "run"


def _copy(trained, tmp_path):
    run = tmp_path / "run"
    shutil.copytree(trained, run)
    return run


def test_a_used_run_directory_is_refused_and_left_untouched(trained, tmp_path):
    run = _copy(trained, tmp_path)
    before = _snapshot(run)
    proc = _cli("scoresde.train", *TINY, "train.steps=2", f"hydra.run.dir={run}", cwd=tmp_path, ok=False)
    assert "already holds files" in proc.stderr and "resume=true" in proc.stderr
    assert _snapshot(run) == before  # .hydra/config.yaml, metrics, checkpoints: nothing rewritten
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run"]  # no stray outputs/DATE/TIME


def test_resume_keeps_the_run_settings_and_refuses_changes(trained, tmp_path):
    run = _copy(trained, tmp_path)
    config_yaml = (run / ".hydra" / "config.yaml").read_bytes()

    # an override that would change the run is refused, naming it; the run's files are untouched
    proc = _cli("scoresde.train", "train.steps=8", "train.lr=1e-3", "resume=true", f"hydra.run.dir={run}",
                cwd=tmp_path, ok=False)  # fmt: skip
    assert "train.lr: checkpoint 0.0005" in proc.stderr
    assert (run / ".hydra" / "config.yaml").read_bytes() == config_yaml
    assert [p.name for p in CheckpointManager(run / "checkpoints").paths()] == ["ckpt_00000003.pt", "ckpt_00000006.pt"]

    # without the original overrides: the checkpoint's settings (likelihood weighting, lr 5e-4), steps applied
    _cli("scoresde.train", "train.steps=8", "progress=false", "resume=true", f"hydra.run.dir={run}", cwd=tmp_path)
    state = torch.load(run / "checkpoints" / "ckpt_00000008.pt", weights_only=True)
    assert state["config"]["train"]["lr"] == 5e-4 and state["config"]["train"]["steps"] == 8
    assert state["config"]["train"]["objective"]["weighting"] == "likelihood"
    assert state["config"]["model"]["net"]["width"] == 16 and state["config"]["data"]["dataset"]["n_train"] == 256
    assert state["optimizer"]["param_groups"][0]["lr"] == pytest.approx(5e-4 * 8 / 100)  # warm-up of 100 steps
    log = (run / "train.log").read_text()
    assert "changed on resume: train.steps: 6 -> 8" in log
    assert "trained 2 steps (step 6 -> 8)" in log  # defect 10: the steps of this run, not the total
    summary = json.loads((run / "summary.json").read_text())
    assert summary["step"] == 8 and summary["steps_this_run"] == 2
    assert "lr: 0.0005" in (run / ".hydra" / "config.yaml").read_text()  # the config that ran


def test_a_damaged_newest_checkpoint_falls_back_to_the_newest_readable_one(trained, tmp_path):
    run = _copy(trained, tmp_path)
    newest = run / "checkpoints" / "ckpt_00000006.pt"
    newest.write_bytes(newest.read_bytes()[:1000])  # truncated, as by a full disk

    proc = _cli("scoresde.sample", f"ckpt={run}", "solver=euler_maruyama", "n=4", "steps=3", "device=cpu",
                "progress=true", f"hydra.run.dir={tmp_path / 'sampled'}", cwd=tmp_path)  # fmt: skip
    assert "ckpt_00000006.pt" in proc.stderr and (tmp_path / "sampled" / "samples.npz").is_file()
    assert "EulerMaruyama:" in proc.stderr and "/3 [" in proc.stderr  # defect 8: the sample CLI's progress bar

    proc = _cli("scoresde.train", "train.steps=9", "progress=false", "resume=true", f"hydra.run.dir={run}",
                cwd=tmp_path)  # fmt: skip
    assert "ckpt_00000006.pt" in proc.stderr
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert names == ["ckpt_00000003.pt", "ckpt_00000006.pt", "ckpt_00000006.pt.damaged", "ckpt_00000009.pt"]
    assert torch.load(run / "checkpoints" / "ckpt_00000006.pt", weights_only=True)["step"] == 6  # rewritten, valid
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 4, 6, 8, 9]  # the lines after step 3 were rewritten by the resumed run, not duplicated


def test_refused_settings_leave_no_directory_and_print_one_message(tmp_path):
    proc = _cli("scoresde.train", *TINY, "eval.divergence=nonsense", cwd=tmp_path, ok=False)
    assert proc.stderr.strip() == (
        "error: eval.divergence must be one of auto, exact, gaussian, rademacher; got 'nonsense'"
    )
    proc = _cli("scoresde.sample", "ckpt=nowhere", "sde=vp", cwd=tmp_path, ok=False)
    assert "the SDE comes from the checkpoint" in proc.stderr
    assert list(tmp_path.iterdir()) == []  # no outputs/DATE/TIME of the refused commands
