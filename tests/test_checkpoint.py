"""Checkpoint files: atomic writes, clear errors for damaged files and mismatched configs, load_checkpoint."""

import random

import numpy as np
import pytest
import torch
from standins import gaussian_data

import scoresde
from scoresde._instantiate import build_score_model, instantiate, locate
from scoresde.training import TrainConfig, Trainer
from scoresde.training.checkpoint import (
    CheckpointError,
    CheckpointManager,
    DamagedCheckpointWarning,
    config_diff,
    read_checkpoint,
    rng_state,
    save_atomic,
    set_rng_state,
)

CONFIG = {
    "seed": 0,
    "sde": {"_target_": "scoresde.VPSDE", "beta_min": 0.1, "beta_max": 20.0},
    "model": {"net": {"_target_": "scoresde.models.MLP", "width": 16, "num_blocks": 1}, "prediction": "eps"},
    "data": {"dataset": {"_target_": "scoresde.data.gaussian", "n_train": 256, "n_test": 64}, "kind": "points"},
    "train": {"steps": 3},
}


def _train(run_dir, config=CONFIG, steps=3):
    sde = instantiate(config["sde"])
    torch.manual_seed(0)
    model = build_score_model(config["model"], sde, (2,))
    cfg = TrainConfig(steps=steps, batch_size=32, checkpoint_every=2, ema_decay=0.5)
    trainer = Trainer(model, gaussian_data(256)[1], cfg, run_dir=run_dir, run_config=config, progress=False)
    trainer.fit()
    return trainer


def test_load_checkpoint_round_trip_and_sampling_in_three_lines(tmp_path):
    trainer = _train(tmp_path)
    ckpt = scoresde.load_checkpoint(tmp_path)  # a run directory -> its newest checkpoint
    assert ckpt.step == 3 and ckpt.path.name == "ckpt_00000003.pt" and ckpt.event_shape == (2,)
    assert isinstance(ckpt.sde, scoresde.VPSDE) and ckpt.config == CONFIG
    assert not ckpt.model.training
    x = torch.randn(5, 2)
    t = torch.full((5,), 0.3)
    with torch.no_grad():
        torch.testing.assert_close(ckpt.score_fn(x, t), trainer.ema.model(x, t))
        raw = scoresde.load_checkpoint(ckpt.path, ema=False)
        torch.testing.assert_close(raw.score_fn(x, t), trainer.model.eval()(x, t))
    assert not torch.allclose(ckpt.score_fn(x, t), raw.score_fn(x, t))
    samples, info = scoresde.sample(ckpt.sde, ckpt.score_fn, (4, *ckpt.event_shape), solver="euler_maruyama", steps=5)
    assert samples.shape == (4, 2) and info.nfe > 0
    assert ckpt.load_dataset().event_shape == (2,)


def test_checkpoints_are_plain_data(tmp_path):
    """torch.load(weights_only=True) reads every entry; the config is nested plain containers."""
    _train(tmp_path)
    state = torch.load(tmp_path / "checkpoints" / "ckpt_00000003.pt", weights_only=True)
    assert state["config"] == CONFIG and state["step"] == 3
    assert {"model", "ema", "optimizer", "rng", "data_order"} <= state.keys()


def test_atomic_write_keeps_the_old_file_when_saving_fails(tmp_path, monkeypatch):
    path = tmp_path / "ckpt_00000001.pt"
    save_atomic({"a": torch.ones(3)}, path)

    def broken_save(obj, f):
        f.write(b"partial bytes")
        raise OSError("disk full")

    monkeypatch.setattr(torch, "save", broken_save)
    with pytest.raises(OSError, match="disk full"):
        save_atomic({"a": torch.zeros(3)}, path)
    assert torch.equal(torch.load(path, weights_only=True)["a"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == [path.name]  # no temporary file left behind


def test_damaged_or_missing_files_give_clear_errors(tmp_path):
    _train(tmp_path)
    good = tmp_path / "checkpoints" / "ckpt_00000003.pt"
    truncated = tmp_path / "truncated.pt"
    truncated.write_bytes(good.read_bytes()[:1000])
    with pytest.raises(CheckpointError, match="truncated.pt.*truncated, corrupt or not a scoresde checkpoint"):
        read_checkpoint(truncated)
    garbage = tmp_path / "garbage.pt"
    garbage.write_bytes(b"not a checkpoint at all")
    with pytest.raises(CheckpointError, match="garbage.pt"):
        scoresde.load_checkpoint(garbage)
    foreign = tmp_path / "foreign.pt"
    torch.save({"weights": torch.ones(2)}, foreign)
    with pytest.raises(CheckpointError, match="not a scoresde checkpoint"):
        read_checkpoint(foreign)
    with pytest.raises(FileNotFoundError, match="no checkpoint file at .*missing.pt"):
        scoresde.load_checkpoint(tmp_path / "missing.pt")
    (tmp_path / "empty_run").mkdir()
    with pytest.raises(FileNotFoundError, match="no checkpoint .* in .*empty_run"):
        scoresde.load_checkpoint(tmp_path / "empty_run")


def test_resuming_into_a_different_config_names_what_differs(tmp_path):
    _train(tmp_path)
    other = {**CONFIG, "model": {**CONFIG["model"], "net": {**CONFIG["model"]["net"], "width": 32}}}
    sde = instantiate(other["sde"])
    model = build_score_model(other["model"], sde, (2,))
    trainer = Trainer(
        model, gaussian_data(256)[1], TrainConfig(steps=5, batch_size=32), run_config=other, progress=False
    )
    with pytest.raises(ValueError, match=r"model\.net\.width: checkpoint 16, config 32"):
        trainer.resume(tmp_path / "checkpoints" / "ckpt_00000003.pt")


def test_weights_that_do_not_fit_name_the_config_difference(tmp_path):
    """A model built differently from the stored config fails with the config diff and the state-dict problems."""
    _train(tmp_path)
    other = {**CONFIG, "model": {**CONFIG["model"], "net": {**CONFIG["model"]["net"], "width": 32}}}
    model = build_score_model(other["model"], instantiate(other["sde"]), (2,))
    trainer = Trainer(model, gaussian_data(256)[1], TrainConfig(steps=5, batch_size=32), progress=False)
    with pytest.raises(CheckpointError, match=r"(?s)do not fit this model.*size mismatch"):
        trainer.resume(tmp_path / "checkpoints" / "ckpt_00000003.pt")


def test_config_diff_lists_changed_added_and_removed_leaves():
    a = {"model": {"net": {"width": 16}, "prediction": "eps"}, "train": {"steps": 3}}
    b = {"model": {"net": {"width": 32}}, "train": {"steps": 9}, "seed": 1}
    assert config_diff(a, b) == [
        "model.net.width: checkpoint 16, config 32",
        "model.prediction: checkpoint 'eps', config '<absent>'",
        "seed: checkpoint '<absent>', config 1",
        "train.steps: checkpoint 3, config 9",
    ]
    assert config_diff(a, b, keys=("train",)) == ["train.steps: checkpoint 3, config 9"]


def test_rng_states_round_trip():
    gen = torch.Generator().manual_seed(5)
    state = rng_state({"g": gen})
    first = (torch.rand(3), np.random.rand(3), random.random(), torch.rand(2, generator=gen))
    set_rng_state(state, {"g": gen})
    second = (torch.rand(3), np.random.rand(3), random.random(), torch.rand(2, generator=gen))
    assert torch.equal(first[0], second[0]) and np.array_equal(first[1], second[1]) and first[2] == second[2]
    assert torch.equal(first[3], second[3])


def test_keep_last_rejects_bad_values(tmp_path):
    with pytest.raises(ValueError, match="keep_last"):
        CheckpointManager(tmp_path, keep_last=0)


def test_locate_prefers_package_attributes():
    """``scoresde.data.digits`` is the exported function (as in hydra), not the module of the same name."""
    assert callable(locate("scoresde.data.digits")) and locate("scoresde.VPSDE") is scoresde.VPSDE
    with pytest.raises(ValueError, match="cannot locate"):
        locate("scoresde.no_such_thing")


def test_targets_written_before_the_subpackage_layout_still_instantiate():
    """A checkpoint's config from before training/ and likelihood/ became subpackages names the old module paths."""
    from scoresde.likelihood import Quantization
    from scoresde.training import DSMObjective

    old_train = {
        "_target_": "scoresde.training.TrainConfig",
        "steps": 7,
        "objective": {"_target_": "scoresde.objectives.DSMObjective", "eps": 1e-4},
    }
    config = instantiate(old_train)
    assert isinstance(config, TrainConfig) and config.steps == 7
    assert isinstance(config.objective, DSMObjective) and config.objective.eps == 1e-4
    assert locate("scoresde.train_config.TrainConfig") is TrainConfig
    assert locate("scoresde.quantization.Quantization") is Quantization
    assert locate("scoresde.likelihood.log_likelihood") is scoresde.log_likelihood
    with pytest.raises(ValueError, match="cannot locate"):
        locate("scoresde.objectives.NoSuchObjective")


def test_rotation_never_deletes_a_checkpoint_of_a_later_step(tmp_path):
    """After a resume from an earlier step, later files stay until the run overwrites them."""
    manager = CheckpointManager(tmp_path, keep_last=2)
    for step in (9, 1, 2, 3):
        manager.save({"step": step})
    assert [p.name for p in manager.paths()] == ["ckpt_00000002.pt", "ckpt_00000003.pt", "ckpt_00000009.pt"]


def test_a_damaged_newest_checkpoint_falls_back_with_a_warning_naming_it(tmp_path):
    _train(tmp_path, steps=4)  # checkpoints at steps 2 and 4
    newest = tmp_path / "checkpoints" / "ckpt_00000004.pt"
    newest.write_bytes(newest.read_bytes()[:500])
    with pytest.warns(DamagedCheckpointWarning, match="ckpt_00000004.pt"):
        ckpt = scoresde.load_checkpoint(tmp_path)
    assert ckpt.step == 2 and ckpt.path.name == "ckpt_00000002.pt"
    with pytest.raises(CheckpointError, match="truncated"):  # named explicitly: no silent substitute
        scoresde.load_checkpoint(newest)
    (tmp_path / "checkpoints" / "ckpt_00000002.pt").write_bytes(b"junk")
    with pytest.raises(CheckpointError, match="every checkpoint"), pytest.warns(DamagedCheckpointWarning):
        scoresde.load_checkpoint(tmp_path)


def test_resume_sets_aside_damaged_later_files_and_refuses_readable_ones(tmp_path):
    _train(tmp_path, steps=4)
    older, newest = tmp_path / "checkpoints" / "ckpt_00000002.pt", tmp_path / "checkpoints" / "ckpt_00000004.pt"
    sde = instantiate(CONFIG["sde"])
    model = build_score_model(CONFIG["model"], sde, (2,))
    cfg = TrainConfig(steps=6, batch_size=32, checkpoint_every=2, ema_decay=0.5)
    trainer = Trainer(model, gaussian_data(256)[1], cfg, run_dir=tmp_path, run_config=CONFIG, progress=False)
    with pytest.raises(ValueError, match="newer readable checkpoints \\(ckpt_00000004.pt\\)"):
        trainer.resume(older)
    newest.write_bytes(newest.read_bytes()[:500])
    with pytest.warns(DamagedCheckpointWarning, match="ckpt_00000004.pt"):
        trainer.resume(older)
    assert trainer.step == 2 and (tmp_path / "checkpoints" / "ckpt_00000004.pt.damaged").is_file()
    trainer.fit()
    assert [p.name for p in CheckpointManager(tmp_path / "checkpoints").paths()] == [
        "ckpt_00000002.pt", "ckpt_00000004.pt", "ckpt_00000006.pt"]  # fmt: skip
