"""Helpers of the subprocess CLI tests: run ``python -m scoresde.<command>`` from this checkout, tiny settings."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
TINY = ["data=gaussian", "data.dataset.n_train=256", "data.dataset.n_test=32", "model=mlp", "model.net.width=16",
        "model.net.num_blocks=1", "train.steps=6", "train.batch_size=32", "train.checkpoint_every=3",
        "train.log_every=2", "sample.n=8", "sample.steps=3", "solver=euler_maruyama", "eval.n_test=0",
        "progress=false", "device=cpu"]  # fmt: skip


def cli_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "SCORESDE_DEBUG")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))  # this checkout's scoresde, whatever is installed
    return env


def command(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def cli(module: str, *args: str, cwd: Path, ok: bool = True, status: int | None = None) -> subprocess.CompletedProcess:
    """Run a CLI; ``ok``: exit 0; else a nonzero exit (``status`` if given) with one ``error:`` line, no traceback."""
    proc = subprocess.run(command(module, *args), cwd=cwd, env=cli_env(), capture_output=True, text=True)
    if ok:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    else:
        assert proc.returncode != 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        if status is not None:
            assert proc.returncode == status, proc.stderr[-3000:]
        assert "Traceback" not in proc.stderr and proc.stderr.startswith("error: "), proc.stderr[-3000:]
    return proc
