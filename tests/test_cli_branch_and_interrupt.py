"""Item 8 of issue 17, training runs: branching a run with resume=<file>, Ctrl-C and kill (subprocess CLI tests)."""

import signal
import subprocess
import time

import pytest
import torch
from cli_helpers import TINY, cli, cli_env, command, default_sigint

from scoresde.training.checkpoint import CheckpointManager


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    where = tmp_path_factory.mktemp("trained")
    cli("scoresde.train", *TINY, f"hydra.run.dir={where / 'a'}", cwd=where)
    return where / "a"


def test_resume_from_a_checkpoint_file_branches_into_a_new_run_directory(trained, tmp_path):
    ckpt = trained / "checkpoints" / "ckpt_00000006.pt"
    cli("scoresde.train", f"resume={ckpt}", f"hydra.run.dir={tmp_path / 'b'}", "train.steps=8", "progress=false",
        cwd=tmp_path)  # fmt: skip
    assert [p.name for p in CheckpointManager(tmp_path / "b" / "checkpoints").paths()] == ["ckpt_00000008.pt"]
    assert "resumed from" in (tmp_path / "b" / "train.log").read_text()


def test_a_failed_branch_leaves_nothing_that_blocks_a_retry(trained, tmp_path):
    ckpt = trained / "checkpoints" / "ckpt_00000006.pt"
    (tmp_path / "b" / ".hydra").mkdir(parents=True)  # what the failing command of the issue left behind
    (tmp_path / "b" / "train.log").write_text("an earlier attempt\n")
    cli("scoresde.train", f"resume={ckpt}", f"hydra.run.dir={tmp_path / 'b'}", "train.steps=7", "progress=false",
        cwd=tmp_path)  # fmt: skip
    assert (tmp_path / "b" / "checkpoints" / "ckpt_00000007.pt").is_file()


def _start(tmp_path, *args):
    return subprocess.Popen(command("scoresde.train", *TINY, *args), cwd=tmp_path, env=cli_env(),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=default_sigint)  # fmt: skip


def _wait_for(path, proc, timeout=60.0):
    deadline = time.monotonic() + timeout
    while not path.exists():
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.05)


def test_ctrl_c_before_the_first_checkpoint_saves_one_and_says_how_to_resume(tmp_path):
    run = tmp_path / "run"
    proc = _start(tmp_path, "train.steps=1000000", "train.checkpoint_every=1000000", "train.log_every=1",
                  f"hydra.run.dir={run}")  # fmt: skip
    _wait_for(run / "metrics.jsonl", proc)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    lines = err.strip().splitlines()
    assert lines[-1].startswith("interrupted: training stopped at step ") and "resume=true" in lines[-1], err
    (ckpt,) = CheckpointManager(run / "checkpoints").paths()
    step = torch.load(ckpt, weights_only=True)["step"]
    assert f"step {step}," in lines[-1]
    cli("scoresde.train", "resume=true", f"hydra.run.dir={run}", f"train.steps={step + 2}", "progress=false",
        cwd=tmp_path)  # fmt: skip
    assert (run / "checkpoints" / f"ckpt_{step + 2:08d}.pt").is_file()


def test_a_run_killed_before_its_first_checkpoint_can_be_started_again_in_place(tmp_path):
    run = tmp_path / "run"
    proc = _start(tmp_path, "train.steps=1000000", "train.checkpoint_every=1000000", "train.log_every=1",
                  f"hydra.run.dir={run}")  # fmt: skip
    _wait_for(run / "metrics.jsonl", proc)
    proc.kill()
    proc.communicate()
    proc = cli("scoresde.train", "resume=true", f"hydra.run.dir={run}", cwd=tmp_path, ok=False)
    assert "without resume=true" in proc.stderr
    cli("scoresde.train", *TINY, f"hydra.run.dir={run}", cwd=tmp_path)  # the same command starts it over there
    assert (run / "checkpoints" / "ckpt_00000006.pt").is_file()
    assert [int(line.split('"step": ')[1].split(",")[0]) for line in (run / "metrics.jsonl").read_text().splitlines()] \
        == [2, 4, 6]  # fmt: skip
