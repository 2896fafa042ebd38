"""The consistency CLI: train=consistency_distillation|consistency_training|consistency_tuning, teacher checks before
anything is written, resume, and python -m scoresde.sample on a consistency checkpoint (tiny 2-D runs, in the
default run: about a minute of subprocesses in all)."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hydra import compose, initialize_config_dir

import scoresde
from scoresde.cli._runtime import CONF_DIR
from scoresde.cli._settings import validate_train
from scoresde.consistency import ConsistencyModel

ROOT = Path(__file__).resolve().parents[2]
TINY = ["data=gaussian", "data.dataset.n_train=256", "data.dataset.n_test=32", "model=mlp", "model.net.width=16",
        "model.net.num_blocks=1", "train.steps=6", "train.batch_size=32", "train.checkpoint_every=3",
        "train.log_every=2", "sample.n=8", "progress=false", "device=cpu"]  # fmt: skip


def _cli(module, *args, cwd, ok=True):
    env = {k: v for k, v in os.environ.items() if k not in ("HYDRA_FULL_ERROR", "SCORESDE_DEBUG")}
    env.update(OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    proc = subprocess.run([sys.executable, "-m", module, *args], cwd=cwd, env=env, capture_output=True, text=True)
    if ok:
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    else:
        assert proc.returncode != 0, proc.stdout[-3000:] + proc.stderr[-3000:]
        assert "Traceback" not in proc.stderr and proc.stderr.startswith("error: "), proc.stderr[-3000:]
    return proc


@pytest.fixture(scope="module")
def teacher(tmp_path_factory):
    """A tiny score model of data=gaussian (VP), the teacher of the runs below."""
    where = tmp_path_factory.mktemp("teacher")
    _cli("scoresde.train", *TINY, "eval.n_test=0", "sample.steps=3", "solver=euler_maruyama",
         f"hydra.run.dir={where / 'run'}", cwd=where)  # fmt: skip
    return where / "run"


def test_distillation_from_a_checkpoint_then_sampling(teacher, tmp_path):
    run = tmp_path / "cd"
    _cli("scoresde.train", *TINY, "train=consistency_distillation", f"teacher={teacher}", f"hydra.run.dir={run}",
         cwd=tmp_path)  # fmt: skip
    ckpt = scoresde.load_checkpoint(run)
    assert isinstance(ckpt.model, ConsistencyModel) and ckpt.model.output == "edm"
    assert (run / "samples_final.png").exists()
    log = (run / "train.log").read_text()
    assert "starts from the teacher's EMA weights" in log and "no test likelihood" in log
    # the student takes the teacher's sigma_data (its checkpoint's) in c_skip, c_out and c_in, stored in its own
    teacher_sd = float(scoresde.load_checkpoint(teacher).model.sigma_data)
    assert ckpt.config["consistency"]["sigma_data"] == ckpt.config["consistency"]["input_sigma_data"] == teacher_sd
    assert ckpt.model.sigma_data == ckpt.model.input_sigma_data == teacher_sd
    out = tmp_path / "samples"
    _cli("scoresde.sample", f"ckpt={run}", "steps=1", "n=50", "progress=false", f"hydra.run.dir={out}",
         cwd=tmp_path)  # fmt: skip
    arrays = np.load(out / "samples.npz")
    assert arrays["samples"].shape == (50, 2) and int(arrays["nfe"]) == 1
    proc = _cli("scoresde.sample", f"ckpt={run}", "solver=ode", "n=4", "progress=false",
                f"hydra.run.dir={tmp_path / 'bad'}", cwd=tmp_path, ok=False)  # fmt: skip
    assert "solver=consistency" in proc.stderr
    proc = _cli("scoresde.likelihood", f"ckpt={run}", "progress=false", f"hydra.run.dir={tmp_path / 'll'}",
                cwd=tmp_path, ok=False)  # fmt: skip
    assert "consistency model" in proc.stderr


def test_resume_reproduces_the_uninterrupted_run(teacher, tmp_path):
    """The objective's step and EMA target go into the checkpoints: resuming at step 3 gives step 6's weights."""
    args = [*TINY, "train=consistency_distillation", f"teacher={teacher}"]
    _cli("scoresde.train", *args, f"hydra.run.dir={tmp_path / 'a'}", cwd=tmp_path)
    state = torch.load(tmp_path / "a" / "checkpoints" / "ckpt_00000006.pt", weights_only=False)
    assert state["objective"]["step"] == 6 and state["objective"]["target"] is not None
    (tmp_path / "b").mkdir()
    for name in ("checkpoints", ".hydra"):
        shutil.copytree(tmp_path / "a" / name, tmp_path / "b" / name)
    (tmp_path / "b" / "checkpoints" / "ckpt_00000006.pt").unlink()
    _cli("scoresde.train", *args, "resume=true", f"hydra.run.dir={tmp_path / 'b'}", cwd=tmp_path)
    resumed = torch.load(tmp_path / "b" / "checkpoints" / "ckpt_00000006.pt", weights_only=False)
    for key, value in state["model"].items():
        torch.testing.assert_close(resumed["model"][key], value, msg=key)


@pytest.mark.parametrize("train", ["consistency_training", "consistency_tuning"])
def test_training_and_tuning_run(teacher, tmp_path, train):
    extra = [f"teacher={teacher}"] if train == "consistency_tuning" else []
    _cli("scoresde.train", *TINY, f"train={train}", *extra, f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)
    ckpt = scoresde.load_checkpoint(tmp_path / "run")
    assert ckpt.model.output == "edm"
    if train == "consistency_training":  # no teacher: the paper's sigma_data 0.5 and c_in = 1/sqrt(s^2 + m^2)
        assert ckpt.model.sigma_data == 0.5 and ckpt.model.input_sigma_data == 1.0
    x, info = scoresde.sample(ckpt.sde, ckpt.model, (5, 2), solver="consistency", steps=2)
    assert info.nfe == 2 and torch.isfinite(x).all()


def test_teacher_oracle(tmp_path):
    _cli("scoresde.train", *TINY, "train=consistency_distillation", "teacher=oracle",
         f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path)  # fmt: skip
    assert scoresde.load_checkpoint(tmp_path / "run").model.output == "edm"


def _config(*overrides):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose("config", overrides=[*TINY, *overrides])


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train=consistency_distillation"], "teacher: train=ConsistencyDistillation needs"),
        (["train=consistency_tuning"], "teacher: train=ConsistencyTuning needs"),
        (["train=consistency_distillation", "teacher=no/such/run"], "no such checkpoint"),
        (["train=consistency_distillation", "teacher=oracle", "data=moons"], "teacher=oracle needs a dataset"),
        (["train=consistency_tuning", "teacher=oracle"], "teacher=oracle is for consistency distillation"),
        (["train=consistency_distillation", "teacher=oracle", "consistency.output=score"], "consistency.output"),
        (["train=consistency_distillation", "teacher=oracle", "train.objective.solver=pc"], "deterministic"),
        (["train=consistency_training", "consistency.sample_steps=0"], "consistency.sample_steps"),
        (["train=consistency_training", "consistency.sigma_data=-1"], "consistency.sigma_data"),
        (["train=consistency_training", "consistency.input_sigma_data=big"], "consistency.input_sigma_data"),
    ],
)
def test_bad_settings_are_refused_by_the_preflight(args, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        validate_train(_config(*args))


def test_good_settings_pass_the_preflight():
    validate_train(_config("train=consistency_distillation", "teacher=oracle"))
    validate_train(_config("train=consistency_training"))


def test_a_refused_run_writes_nothing(tmp_path):
    proc = _cli("scoresde.train", *TINY, "train=consistency_distillation", "teacher=no/such/run",
                f"hydra.run.dir={tmp_path / 'run'}", cwd=tmp_path, ok=False)  # fmt: skip
    assert "no such checkpoint" in proc.stderr
    assert not (tmp_path / "run").exists()


def test_teacher_of_another_sde_or_shape_or_corrupt_is_refused(teacher, tmp_path):
    base = ["train=consistency_distillation"]
    with pytest.raises(ValueError, match=r"was trained for VPSDE(?s:.)*sde="):
        validate_train(_config(*base, f"teacher={teacher}", "sde=ve"))
    with pytest.raises(ValueError, match=re.escape("shape (2,)") + r"(?s:.)*" + re.escape("(3,)")):
        validate_train(_config(*base, f"teacher={teacher}", "data.dataset.dim=3"))
    bad = tmp_path / "corrupt.pt"
    bad.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="cannot be loaded"):
        validate_train(_config(*base, f"teacher={bad}"))


def test_inpainting_task_with_a_consistency_checkpoint(tmp_path):
    """python -m scoresde.sample ckpt=CM task=inpaint task.method=consistency (Algorithm 4) on a tiny digits model."""
    small = ["train.steps=2", "train.batch_size=8", "model.net.channels=8", "model.net.ch_mult=[1]",
             "model.net.attn_levels=[]", "sample.n=4", "progress=false", "device=cpu"]  # fmt: skip
    _cli("scoresde.train", "train=consistency_training", *small, f"hydra.run.dir={tmp_path / 'cm'}", cwd=tmp_path)
    _cli("scoresde.sample", f"ckpt={tmp_path / 'cm'}", "task=inpaint", "task.method=consistency", "n=2",
         "task.samples=2", "steps=2", "progress=false", f"hydra.run.dir={tmp_path / 's'}", cwd=tmp_path)  # fmt: skip
    assert (tmp_path / "s" / "inpaint_half.png").exists()


def test_a_checkpoint_of_the_earlier_rule_loads_as_it_was_trained(teacher, tmp_path):
    """A consistency checkpoint written before input_sigma_data (block: sigma_data 0.5, no input_sigma_data) loads
    with the rule it was trained with, f = c_skip(0.5) (m(eps) / m) x + c_out(0.5) m(eps) F(x / sqrt(m^2 + s^2)),
    so it samples as before."""
    from scoresde.consistency.parameterization import EDMOutput

    run = tmp_path / "cd"
    _cli("scoresde.train", *TINY, "train=consistency_distillation", f"teacher={teacher}", "train.steps=3",
         f"hydra.run.dir={run}", cwd=tmp_path)  # fmt: skip
    path = sorted((run / "checkpoints").glob("ckpt_*.pt"))[-1]
    state = torch.load(path, weights_only=False)
    state["config"]["consistency"]["sigma_data"] = 0.5
    del state["config"]["consistency"]["input_sigma_data"]
    old = tmp_path / "old.pt"
    torch.save(state, old)
    model = scoresde.load_checkpoint(old).model
    assert model.sigma_data == 0.5 and model.input_sigma_data == 1.0
    sde, x, t = model.sde, torch.randn(7, 2), torch.linspace(0.01, 1.0, 7)
    m, s, m_eps = sde.mean_scale(t), sde.std(t), sde.mean_scale(torch.full_like(t, 1e-3))
    c_skip, c_out = EDMOutput(0.5).coefficients(s / m, sde.std(torch.full_like(t, 1e-3)) / m_eps)
    with torch.no_grad():
        out = model.net(x * torch.rsqrt(m**2 + s**2)[:, None], model.net_time(t))
        torch.testing.assert_close(model(x, t), (c_skip * m_eps / m)[:, None] * x + (c_out * m_eps)[:, None] * out)
