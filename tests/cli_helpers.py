"""Helpers of the subprocess CLI tests: run ``python -m scoresde.<command>`` from this checkout, tiny settings."""

import os
import signal
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


def default_sigint() -> None:
    """``preexec_fn`` of a CLI that a test interrupts: Ctrl-C acts as in a terminal even when the test run itself
    ignores SIGINT (started under ``nohup`` or in the background, whose children inherit SIG_IGN)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


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


def write_checkpoint(path: Path, data: str, *overrides: str) -> Path:
    """A small untrained MLP score model for ``data``, saved as the training loop saves checkpoints."""
    import torch
    from hydra import compose, initialize_config_dir
    from omegaconf import OmegaConf

    from scoresde._instantiate import build_score_model, instantiate
    from scoresde.cli._runtime import CONF_DIR
    from scoresde.training.checkpoint import FORMAT, VERSION

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=[f"data={data}", "sde=vp", "model=mlp", "model.net.width=16", *overrides])
    config = OmegaConf.to_container(cfg, resolve=True)
    dataset = instantiate(config["data"]["dataset"])
    event_shape = tuple(dataset.event_shape)
    torch.manual_seed(0)
    model = build_score_model(config["model"], instantiate(config["sde"]), event_shape, data=dataset.train)
    state = {"format": FORMAT, "version": VERSION, "step": 7, "event_shape": list(event_shape),
             "model": model.state_dict(), "ema": {"model": model.state_dict(), "num_updates": 7, "decay": 0.999},
             "config": config}  # fmt: skip
    path.mkdir(parents=True, exist_ok=True)
    torch.save(state, path / "ckpt_00000007.pt")
    return path / "ckpt_00000007.pt"
