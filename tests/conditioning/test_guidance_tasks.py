"""The sampling CLI's class_conditional and cfg tasks: in-process on tiny models, and end to end from the shell."""

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import scoresde
from scoresde.cli.guidance_tasks import CFGTask, ClassConditionalTask
from scoresde.conditioning.noisy_classifier import NoisyClassifier, NoisyClassifierReport, save_noisy_classifier
from scoresde.models import ScoreModel, UNet
from scoresde.solvers import SOLVERS
from scoresde.training.checkpoint import Checkpoint

DIGITS = {"data": {"dataset": {"_target_": "scoresde.data.digits", "n_test": 297, "seed": 0}}}


def _checkpoint(num_classes, sde=None):
    sde = sde or scoresde.VPSDE()
    torch.manual_seed(0)
    model = ScoreModel(UNet((1, 8, 8), channels=4, ch_mult=(1, 2), num_classes=num_classes), sde).eval()
    return Checkpoint(sde, model, DIGITS, 0, (1, 8, 8), Path("tiny.pt"))


def _run(task, ckpt, tmp_path, n=3):
    solver = SOLVERS["ancestral"]()
    return task.run(ckpt=ckpt, solver=solver, n=n, steps=3, seed=0, device=torch.device("cpu"), run_dir=tmp_path)


def test_cfg_task_writes_a_grid_and_the_samples(tmp_path):
    path = _run(CFGTask(label=None, scale=2.0, samples=2), _checkpoint(10), tmp_path)
    assert path == tmp_path / "cfg.png" and path.stat().st_size > 0
    out = np.load(tmp_path / "cfg.npz")
    assert out["samples"].shape == (3, 2, 1, 8, 8) and out["labels"].tolist() == [0, 1, 2]
    assert int(out["nfe"]) == 4  # 3 steps + the denoising step; each guided call counts once


def test_cfg_task_refuses_an_unconditional_model_and_unknown_labels(tmp_path):
    with pytest.raises(ValueError, match="unconditional"):
        _run(CFGTask(label=3), _checkpoint(None), tmp_path)
    with pytest.raises(ValueError, match="label=12"):
        _run(CFGTask(label=12), _checkpoint(10), tmp_path)


def test_class_conditional_task_with_a_saved_classifier(tmp_path):
    sde = scoresde.VPSDE()
    clf = NoisyClassifier(sde, (1, 8, 8), 10, channels=8, ch_mult=(1,), norm_groups=4)
    save_noisy_classifier(
        clf, NoisyClassifierReport("digits", 0, 0.0), tmp_path / "clf", {"_target_": "scoresde.VPSDE"}
    )
    path = _run(ClassConditionalTask(str(tmp_path / "clf"), label=3, samples=2), _checkpoint(None), tmp_path, n=2)
    assert path.name == "class_conditional.png"
    assert np.load(tmp_path / "class_conditional.npz")["labels"].tolist() == [3, 3]
    with pytest.raises(ValueError, match="trained under"):
        _run(ClassConditionalTask(str(tmp_path / "clf")), _checkpoint(None, scoresde.SubVPSDE()), tmp_path)


def _shell(module, *args, cwd):
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HYDRA_FULL_ERROR": "1"}
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def test_train_with_labels_then_cfg_sampling_from_the_command_line(tmp_path):
    """The CLI trains a label-conditional model (4 steps) and samples task=cfg."""
    repo = Path(__file__).resolve().parents[2]
    tiny = ["model.net.channels=4", "model.net.ch_mult=[1,2]", "train.steps=4", "train.batch_size=32",
            "sample.n=4", "sample.steps=2", "eval.n_test=0", "progress=false", "device=cpu", "threads=1"]  # fmt: skip
    _shell("scoresde.train", *tiny, "model.net.num_classes=10", "train.label_dropout=0.1",
           f"hydra.run.dir={tmp_path / 'cfg'}", cwd=repo)  # fmt: skip
    ckpt = torch.load(next((tmp_path / "cfg" / "checkpoints").glob("ckpt_*.pt")), weights_only=True)
    assert ckpt["config"]["train"]["label_dropout"] == 0.1 and ckpt["config"]["model"]["net"]["num_classes"] == 10
    _shell("scoresde.sample", f"ckpt={tmp_path / 'cfg'}", "task=cfg", "label=3", "scale=2", "n=2", "steps=3",
           f"hydra.run.dir={tmp_path / 's1'}", cwd=repo)  # fmt: skip
    with np.load(tmp_path / "s1" / "cfg.npz") as f:
        assert f["samples"].shape[:2] == (2, 8) and (f["labels"] == 3).all() and np.isfinite(f["samples"]).all()


def test_train_with_labels_then_guided_sampling_from_the_command_line(tmp_path):
    repo = Path(__file__).resolve().parents[2]
    tiny = ["model.net.channels=4", "model.net.ch_mult=[1,2]", "train.steps=4", "train.batch_size=32",
            "sample.n=4", "sample.steps=2", "eval.n_test=0", "progress=false", "device=cpu"]  # fmt: skip
    _shell("scoresde.train", *tiny, "model.net.num_classes=10", "train.label_dropout=0.1",
           f"hydra.run.dir={tmp_path / 'cfg'}", cwd=repo)  # fmt: skip
    _shell("scoresde.train", *tiny, f"hydra.run.dir={tmp_path / 'plain'}", cwd=repo)
    _shell("scoresde.train_noisy_classifier", "train.steps=4", "train.eval_times=[0.0,0.5]", "device=cpu",
           f"hydra.run.dir={tmp_path / 'clf'}", cwd=repo)  # fmt: skip
    assert (tmp_path / "clf" / "accuracy.md").is_file()
    _shell("scoresde.sample", f"ckpt={tmp_path / 'cfg'}", "task=cfg", "label=3", "scale=2", "n=2", "steps=3",
           f"hydra.run.dir={tmp_path / 's1'}", cwd=repo)  # fmt: skip
    _shell("scoresde.sample", f"ckpt={tmp_path / 'plain'}", "task=class_conditional", f"classifier={tmp_path / 'clf'}",
           "n=2", "steps=3", f"hydra.run.dir={tmp_path / 's2'}", cwd=repo)  # fmt: skip
    assert (tmp_path / "s1" / "cfg.png").is_file() and (tmp_path / "s2" / "class_conditional.png").is_file()
    # the digits benchmark on the same tiny models
    out = tmp_path / "bench"
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(repo)}
    args = ["--uncond", tmp_path / "plain", "--classifier", tmp_path / "clf", "--cfg", tmp_path / "cfg",
            "--cg-scales", "2", "--cfg-scales", "1", "--n", "20", "--steps", "2", "--out", out,
            "--cache", tmp_path / "cache"]  # fmt: skip
    script = repo / "benchmarks" / "guidance_digits.py"
    proc = subprocess.run([sys.executable, str(script), *map(str, args)], cwd=repo, env=env, capture_output=True,
                          text=True)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    rows = (out / "guidance_digits.csv").read_text().splitlines()
    assert len(rows) == 1 + 4 and (out / "cfg_w1.png").is_file() and (out / "noisy_classifier_accuracy.md").is_file()
