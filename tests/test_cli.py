"""The hydra entry points, run as a user runs them: python -m scoresde.train / scoresde.sample in subprocesses."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

import scoresde
from scoresde.cli._runtime import CONF_DIR

ROOT = Path(__file__).resolve().parents[1]
TINY_POINTS = [
    "data=gaussian",
    "data.dataset.n_train=512",
    "data.dataset.n_test=64",
    "model=mlp",
    "model.net.width=16",
    "model.net.num_blocks=1",
    "train.steps=6",
    "train.batch_size=64",
    "train.checkpoint_every=3",
    "train.log_every=2",
    "sample.n=16",
    "sample.steps=4",
    "solver=euler_maruyama",
    "eval.n_test=8",
    "eval.rtol=1e-2",
    "eval.atol=1e-2",
    "threads=1",
    "progress=false",
    "device=cpu",
]


def _run(module, *args, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_train_resume_and_sample_from_the_command_line(tmp_path):
    run = tmp_path / "run"
    _run("scoresde.train", *TINY_POINTS, f"hydra.run.dir={run}", cwd=tmp_path)
    for name in ("metrics.jsonl", "loss.png", "samples_final.png", "samples_00000006.npz", "eval.json",
                 ".hydra/config.yaml", "train.log"):  # fmt: skip
        assert (run / name).is_file(), name
    summary = json.loads((run / "summary.json").read_text())
    assert summary["step"] == 6 and summary["eval"]["unit"] == "nats/dim"
    assert [p.name for p in sorted((run / "checkpoints").iterdir())] == ["ckpt_00000003.pt", "ckpt_00000006.pt"]

    # resume=true continues the run in the same directory up to the new number of steps
    _run("scoresde.train", *TINY_POINTS, "train.steps=8", "resume=true", "eval.n_test=0", f"hydra.run.dir={run}",
         cwd=tmp_path)  # fmt: skip
    assert torch.load(run / "checkpoints" / "ckpt_00000008.pt", weights_only=True)["step"] == 8
    steps = [json.loads(line)["step"] for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert steps == [2, 4, 6, 8]

    out = tmp_path / "sampled"
    _run("scoresde.sample", f"ckpt={run}", "solver=euler_maruyama", "n=10", "steps=5", f"hydra.run.dir={out}",
         "device=cpu", cwd=tmp_path)  # fmt: skip
    assert (out / "samples.png").is_file()
    with np.load(out / "samples.npz") as f:
        assert f["samples"].shape == (10, 2) and np.isfinite(f["samples"]).all() and int(f["nfe"]) == 6


def test_resume_true_without_a_checkpoint_says_what_to_do(tmp_path):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.run(
        [sys.executable, "-m", "scoresde.train", *TINY_POINTS, "resume=true", f"hydra.run.dir={tmp_path / 'new'}"],
        cwd=tmp_path, env=env, capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "holds no checkpoint" in proc.stderr and "hydra.run.dir" in proc.stderr


@pytest.mark.parametrize("sde", ["vp", "subvp", "ve"])
@pytest.mark.parametrize("data", ["digits", "checkerboard"])
def test_every_default_config_composes_and_builds(sde, data):
    """The config groups fit together: the SDE, data set, model, solver and train config all instantiate."""
    from scoresde._instantiate import build_score_model, instantiate
    from scoresde.cli._runtime import plain_config

    model = "unet" if data == "digits" else "mlp"
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = plain_config(compose("config", overrides=[f"sde={sde}", f"data={data}", f"model={model}"]))
    dataset = instantiate(cfg["data"]["dataset"])
    built = build_score_model(cfg["model"], instantiate(cfg["sde"]), dataset.event_shape, data=dataset.train)
    x = dataset.train[:3]
    assert built(x, torch.full((3,), 0.5)).shape == x.shape
    assert instantiate(cfg["train"]).steps > 0
    solver = instantiate(cfg["solver"])  # the configured solver samples from the built model: 2 steps, finite output
    out, info = scoresde.sample(built.sde, built, (2, *dataset.event_shape), solver=solver, steps=2,
                                generator=torch.Generator().manual_seed(0))  # fmt: skip
    assert out.shape == (2, *dataset.event_shape) and bool(torch.isfinite(out).all()) and info.nfe >= 2


@pytest.mark.slow
def test_multirun_over_sdes_on_digits(tmp_path):
    """hydra -m sde=vp,ve: one run directory per job, each with its checkpoint and sample grid."""
    args = ["-m", "sde=vp,ve", "model.net.channels=8", "train.steps=4", "train.batch_size=32", "sample.n=4",
            "sample.steps=3", "eval.n_test=2", "eval.rtol=1e-2", "eval.atol=1e-2", "threads=1", "progress=false",
            f"hydra.sweep.dir={tmp_path / 'multi'}", "device=cpu"]  # fmt: skip
    _run("scoresde.train", *args, cwd=tmp_path)
    jobs = sorted(p for p in (tmp_path / "multi").iterdir() if p.is_dir())
    assert [p.name for p in jobs] == ["0", "1"]
    for job, sde in zip(jobs, ["vp", "ve"], strict=True):
        assert f"sde={sde}" in (job / ".hydra" / "overrides.yaml").read_text()
        assert (job / "samples_final.png").is_file() and (job / "checkpoints" / "ckpt_00000004.pt").is_file()
        assert json.loads((job / "eval.json").read_text())["unit"] == "bits/dim"


def test_multirun_over_sdes_on_points(tmp_path):
    """The fast form of the digits multirun above: hydra -m over two SDEs with a tiny 2-D model, one job each."""
    sweep = tmp_path / "multi"
    _run("scoresde.train", "-m", "sde=vp,ve", *TINY_POINTS, f"hydra.sweep.dir={sweep}", cwd=tmp_path)
    jobs = sorted(p for p in sweep.iterdir() if p.is_dir())
    assert [p.name for p in jobs] == ["0", "1"]
    for job, sde in zip(jobs, ["vp", "ve"], strict=True):
        assert f"sde={sde}" in (job / ".hydra" / "overrides.yaml").read_text()
        assert (job / "summary.json").is_file() and any((job / "checkpoints").glob("ckpt_*.pt"))
        ckpt = torch.load(next((job / "checkpoints").glob("ckpt_*.pt")), weights_only=True)
        assert ckpt["config"]["sde"]["_target_"].endswith({"vp": "VPSDE", "ve": "VESDE"}[sde])


def test_console_scripts_are_declared():
    text = (Path(__file__).resolve().parents[1] / "pyproject.toml").read_text()
    assert 'scoresde-train = "scoresde.cli.train:main"' in text
    assert 'scoresde-sample = "scoresde.cli.sample:main"' in text


def test_per_model_adjustments_apply_before_command_line_overrides():
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        digits = compose("config")
        points = compose("config", overrides=["data=checkerboard", "model=mlp"])
        forced = compose("config", overrides=["data=checkerboard", "model=mlp", "train.steps=7", "sample.n=3"])
    assert (digits.train.steps, digits.sample.n) == (2000, 64)
    assert (points.train.steps, points.sample.n) == (2000, 2000)
    assert (forced.train.steps, forced.sample.n) == (7, 3)


@pytest.mark.parametrize("train", ["default", "likelihood", "ddpm", "ncsn"])
def test_every_train_config_instantiates(train):
    from scoresde._instantiate import instantiate
    from scoresde.cli._runtime import plain_config

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = plain_config(compose("config", overrides=[f"train={train}"]))
    config = instantiate(cfg["train"])
    assert type(config.objective).__name__.lower().startswith({"default": "dsm", "likelihood": "dsm"}.get(train, train))
