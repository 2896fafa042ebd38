"""Defects found driving a fresh clone (issue 17, item 8): each test failed on the code before its fix."""

import subprocess
import sys

import numpy as np
import pytest
import torch
from cli_helpers import cli, cli_env

from scoresde.data import image_folder
from scoresde.likelihood.baselines import fit_baselines


def _png_folder(root, n, size=8):
    import matplotlib.image

    root.mkdir(parents=True)
    rng = np.random.default_rng(0)
    for i in range(n):
        matplotlib.image.imsave(root / f"{i}.png", rng.random((size, size, 3)))
    return root


def test_a_corrupt_image_hint_names_the_key_hydra_takes(tmp_path):
    root = _png_folder(tmp_path / "images", 4)
    (root / "broken.png").write_bytes(b"not an image")
    with pytest.raises(ValueError, match=r"data\.dataset\.on_error=skip"):
        image_folder(root, 8, cache=False)


def test_a_folder_smaller_than_the_batch_is_refused_before_the_model_naming_the_key(tmp_path, monkeypatch):
    root = _png_folder(tmp_path / "images", 6)
    monkeypatch.setenv("SCORESDE_CACHE", str(tmp_path / "cache"))
    assert cli_env()["SCORESDE_CACHE"] == str(tmp_path / "cache")
    proc = cli("scoresde.train", "data=folder", f"data.root={root}", "data.resolution=8", "data.dataset.n_test=1",
               "model=mlp", "model.net.width=8", "train.batch_size=32", "device=cpu", "progress=false",
               f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path, ok=False, status=2)  # fmt: skip
    assert "train.batch_size=32 exceeds the 5 training examples" in proc.stderr
    assert "forward pass" not in proc.stdout  # refused before the model was built and timed
    assert not (tmp_path / "run").exists()


def test_the_gaussian_baseline_of_a_tiny_dataset_is_not_a_singular_fit():
    g = torch.Generator().manual_seed(0)
    train = torch.randint(256, (20, 3, 8, 8), generator=g) / 127.5 - 1  # 8-bit images in [-1, 1]
    test = torch.randint(256, (10, 3, 8, 8), generator=g) / 127.5 - 1
    baselines = fit_baselines(train, test, 256, (-1.0, 1.0))
    (name,) = [k for k in baselines if k.startswith("gaussian")]
    assert "singular" in name and "20 examples <= 192 dims" in name
    assert baselines[name].mean < 10  # 8 bits/dim is uniform noise; the singular fit gave thousands
    large = fit_baselines(torch.rand(500, 2), torch.rand(10, 2), None)
    assert set(large) == {"gaussian (full covariance)"}


def test_train_noisy_classifier_refuses_to_overwrite_a_trained_classifier(tmp_path):
    run = tmp_path / "clf"
    (run / ".hydra").mkdir(parents=True)
    (run / ".hydra" / "config.yaml").write_text("the trained classifier's config\n")
    (run / "noisy_classifier.pt").write_bytes(b"trained weights")
    proc = cli("scoresde.train_noisy_classifier", "train.steps=1", "train.batch_size=4", "classifier.channels=8",
               "train.eval_times=[0.5]", "device=cpu", f"hydra.run.dir={run}", cwd=tmp_path, ok=False,
               status=2)  # fmt: skip
    assert "already holds files" in proc.stderr
    assert (run / "noisy_classifier.pt").read_bytes() == b"trained weights"
    assert (run / ".hydra" / "config.yaml").read_text() == "the trained classifier's config\n"


def test_a_failed_multirun_leaves_no_directory(tmp_path):
    cli("scoresde.train", "-m", "data=gaussian", "model=mlp", "train.steps=2", "eval.n_test=0", "device=cpu",
        "eval.divergence=nonsense,exact", f"hydra.sweep.dir={tmp_path / 'multirun'}", cwd=tmp_path,
        ok=False)  # fmt: skip
    assert list(tmp_path.iterdir()) == []


def test_a_failed_fid_sweep_leaves_no_directory(tmp_path):
    from cli_helpers import ROOT

    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "fid_sweep.py"), "-m", f"ckpt={tmp_path / 'none'}",
                           "solver=euler_maruyama", "steps=2", f"out_dir={tmp_path / 'out'}",
                           f"hydra.sweep.dir={tmp_path / 'multirun'}"],
                          cwd=tmp_path, env=cli_env(), capture_output=True, text=True)  # fmt: skip
    assert proc.returncode != 0 and "Traceback" not in proc.stderr and "error: " in proc.stderr, proc.stderr[-3000:]
    assert list(tmp_path.iterdir()) == []


def test_a_read_only_run_directory_is_refused_in_one_line(tmp_path, monkeypatch, capsys):
    import tempfile

    from hydra import compose, initialize_config_dir

    from scoresde.cli._preflight import Preflight
    from scoresde.cli._runtime import CONF_DIR

    for var in ("SCORESDE_DEBUG", "HYDRA_FULL_ERROR"):
        monkeypatch.delenv(var, raising=False)
    (tmp_path / "ckpt.pt").write_bytes(b"")
    run = tmp_path / "run"
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        config = compose("sample", overrides=[f"ckpt={tmp_path / 'ckpt.pt'}", f"hydra.run.dir={run}"],
                         return_hydra_config=True)  # fmt: skip

    def read_only(*args, **kwargs):  # what a read-only mount answers (chmod does not stop root)
        raise PermissionError(30, "Read-only file system")

    monkeypatch.setattr(tempfile, "mkstemp", read_only)
    with pytest.raises(SystemExit) as stop:
        Preflight("sample").on_run_start(config)
    assert stop.value.code == 2
    assert capsys.readouterr().err == (
        f"error: the run directory {run} is not writable (Read-only file system): make it writable, or continue in "
        "another hydra.run.dir (a training run: resume=<its checkpoint file> there)\n"
    )


def test_settings_checked_after_loading_exit_2_as_documented(tmp_path):
    from cli_helpers import write_checkpoint

    ckpt = write_checkpoint(tmp_path / "ckpt", "mixture")
    proc = cli("scoresde.likelihood", f"ckpt={ckpt}", "data=digits", "limit=2", "device=cpu", "progress=false",
               f"hydra.run.dir={tmp_path / 'l'}", cwd=tmp_path, ok=False, status=2)  # fmt: skip
    assert "event shape" in proc.stderr and not (tmp_path / "l").exists()


def test_which_run_directories_count_as_stopped_before_their_first_checkpoint(tmp_path):
    from scoresde.cli._preflight import stopped_before_first_checkpoint

    run = tmp_path / "run"
    (run / ".hydra").mkdir(parents=True)
    (run / "train.log").write_text("")
    (run / "metrics.jsonl").write_text("")
    (run / "samples_00000002.png").write_bytes(b"")
    (run / "checkpoints").mkdir()
    assert stopped_before_first_checkpoint(run)
    (run / "checkpoints" / "ckpt_00000004.pt").write_bytes(b"")
    assert not stopped_before_first_checkpoint(run)  # something to resume
    (run / "checkpoints" / "ckpt_00000004.pt").unlink()
    (run / "notes.txt").write_text("the user's own file")
    assert not stopped_before_first_checkpoint(run)  # never replace what a run does not write
