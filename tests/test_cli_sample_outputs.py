"""The sample CLI's outputs: per-image PNGs, the solver listing, conditional tasks that say what they do, Ctrl-C
that keeps finished batches, and refusals with the documented exit status (issue 17, items 7 and 8)."""

import signal
import subprocess
import time

import numpy as np
import pytest
import torch
from cli_helpers import cli, cli_env, command, default_sigint, write_checkpoint


@pytest.fixture(scope="module")
def digits_ckpt(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("digits") / "checkpoints", "digits")


@pytest.fixture(scope="module")
def points_ckpt(tmp_path_factory):
    return write_checkpoint(tmp_path_factory.mktemp("points") / "checkpoints", "gaussian")


def test_save_images_writes_one_png_per_sample_beside_the_grid(digits_ckpt, tmp_path):
    run = tmp_path / "s"
    cli("scoresde.sample", f"ckpt={digits_ckpt}", "n=5", "batch_size=3", "solver=euler_maruyama", "steps=2",
        "progress=false", "device=cpu", "save_images=true", f"hydra.run.dir={run}", cwd=tmp_path)  # fmt: skip
    assert sorted(p.name for p in (run / "images").iterdir()) == [f"{i:06d}.png" for i in range(5)]
    import matplotlib.image

    samples = np.load(run / "samples.npz")["samples"]  # (5, 1, 8, 8) in [-1, 1]
    image = matplotlib.image.imread(run / "images" / "000003.png")  # (8, 8, 4) RGBA in [0, 1]
    assert image.shape[:2] == (8, 8)
    expected = np.clip((samples[3, 0] + 1) / 2, 0, 1)
    assert np.abs(image[..., 0] - expected).max() <= 1 / 255 + 1e-6
    assert (run / "samples.png").is_file()


def test_save_images_on_points_is_a_setting_error(points_ckpt, tmp_path):
    proc = cli("scoresde.sample", f"ckpt={points_ckpt}", "n=2", "save_images=true", "device=cpu",
               f"hydra.run.dir={tmp_path / 's'}", cwd=tmp_path, ok=False, status=2)  # fmt: skip
    assert "save_images=true" in proc.stderr and not (tmp_path / "s").exists()


def test_list_solvers_prints_every_solver_with_its_defaults_and_writes_nothing(tmp_path):
    from scoresde.solvers import SOLVERS

    out = cli("scoresde.sample", "list_solvers=true", cwd=tmp_path).stdout
    for name in SOLVERS:
        assert f"  {name} " in out, name
    assert "method='dopri5'" in out and "rtol=1e-05" in out and "pc_vp" in out
    assert list(tmp_path.iterdir()) == []


def test_inpaint_shows_progress_and_names_its_output(digits_ckpt, tmp_path):
    run = tmp_path / "s"
    proc = cli("scoresde.sample", f"ckpt={digits_ckpt}", "task=inpaint", "n=2", "task.samples=1", "steps=3",
               "solver=euler_maruyama", "progress=true", "device=cpu", f"hydra.run.dir={run}",
               cwd=tmp_path)  # fmt: skip
    assert "/3 [" in proc.stderr  # the progress bar over the solver steps
    assert f"wrote {run / 'inpaint_half.png'}" in proc.stdout  # hydra logs to stdout


def test_a_mask_with_the_wrong_channel_count_is_refused_by_name(digits_ckpt, tmp_path):
    mask = tmp_path / "mask.npy"
    np.save(mask, np.ones((3, 8, 8), dtype=bool))  # digits have one channel
    proc = cli("scoresde.sample", f"ckpt={digits_ckpt}", "task=inpaint", f"mask={mask}", "n=2", "steps=2",
               "progress=false", "device=cpu", f"hydra.run.dir={tmp_path / 's'}", cwd=tmp_path, ok=False,
               status=2)  # fmt: skip
    assert "has 3 channels but the images have 1" in proc.stderr and not (tmp_path / "s").exists()


def test_a_used_run_directory_is_refused_without_suggesting_resume(points_ckpt, tmp_path):
    (tmp_path / "s").mkdir()
    (tmp_path / "s" / "samples.npz").write_bytes(b"")
    proc = cli("scoresde.sample", f"ckpt={points_ckpt}", f"hydra.run.dir={tmp_path / 's'}", cwd=tmp_path, ok=False,
               status=2)  # fmt: skip
    assert "already holds files" in proc.stderr and "resume" not in proc.stderr


def test_ctrl_c_keeps_the_finished_batches(points_ckpt, tmp_path):
    run = tmp_path / "s"
    proc = subprocess.Popen(command("scoresde.sample", f"ckpt={points_ckpt}", "n=10000000", "batch_size=4",
                                    "solver=euler_maruyama", "steps=2", "progress=false", "device=cpu",
                                    f"hydra.run.dir={run}"),
                            cwd=tmp_path, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, preexec_fn=default_sigint)  # fmt: skip
    while "solver" not in (line := proc.stdout.readline()):  # hydra's log line just before sampling starts
        assert line, "the sample command ended early"
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err, err
    assert err.strip().splitlines()[-1].startswith("interrupted: kept the "), err
    kept = np.load(run / "samples.npz")["samples"]
    assert len(kept) >= 4 and len(kept) % 4 == 0 and f"kept the {len(kept)} finished samples" in err, err
    # sample i depends on (seed, i) only: the kept ones are the first samples of an uninterrupted run
    cli("scoresde.sample", f"ckpt={points_ckpt}", "n=8", "batch_size=4", "solver=euler_maruyama", "steps=2",
        "progress=false", "device=cpu", f"hydra.run.dir={tmp_path / 'full'}", cwd=tmp_path)  # fmt: skip
    full = np.load(tmp_path / "full" / "samples.npz")["samples"]
    torch.testing.assert_close(torch.as_tensor(kept[:8]), torch.as_tensor(full[: len(kept[:8])]))


def test_img2img_task_edits_test_images(digits_ckpt, tmp_path):
    run = tmp_path / "s"
    proc = cli("scoresde.sample", f"ckpt={digits_ckpt}", "task=img2img", "t_start=0.3", "n=2", "task.samples=2",
               "steps=3", "solver=euler_maruyama", "progress=false", "device=cpu", f"hydra.run.dir={run}",
               cwd=tmp_path)  # fmt: skip
    assert f"wrote {run / 'img2img.png'}" in proc.stdout
    saved = np.load(run / "img2img.npz")
    assert saved["samples"].shape == (4, 1, 8, 8) and float(saved["t_start"]) == 0.3
