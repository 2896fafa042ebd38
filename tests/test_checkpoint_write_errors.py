"""A checkpoint that cannot be written (full disk) names the file, the step and the way back (issue 17, item 8)."""

import errno

import pytest
import torch
from standins import TinyScore, gaussian_data

from scoresde import VPSDE
from scoresde.training import TrainConfig, Trainer
from scoresde.training.checkpoint import CheckpointWriteError


def test_a_full_disk_names_the_file_the_step_and_how_to_resume(tmp_path, monkeypatch):
    torch.manual_seed(0)
    cfg = TrainConfig(steps=8, batch_size=32, lr=1e-3, warmup_steps=0, checkpoint_every=4, log_every=4)
    trainer = Trainer(TinyScore(VPSDE()), gaussian_data(64)[1], cfg, run_dir=tmp_path, progress=False)
    real_save = torch.save

    def full_disk(obj, f, *args, **kwargs):
        if trainer.step == 8:
            raise RuntimeError(
                "[enforce fail at inline_container.cc:603] . PytorchStreamWriter failed writing file "
                "data/0: file write failed"
            )  # what torch.save says when the disk is full
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_disk)
    with pytest.raises(CheckpointWriteError) as info:
        trainer.fit()
    message = str(info.value)
    assert str(tmp_path / "checkpoints" / "ckpt_00000008.pt") in message and "(step 8)" in message
    assert str(tmp_path / "checkpoints" / "ckpt_00000004.pt") in message and "resume=true" in message
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["ckpt_00000004.pt"]  # no partial file


def test_an_os_error_keeps_its_reason(tmp_path, monkeypatch):
    trainer = Trainer(TinyScore(VPSDE()), gaussian_data(64)[1], TrainConfig(steps=1, batch_size=32),
                      run_dir=tmp_path, progress=False)  # fmt: skip

    def no_space(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(torch, "save", no_space)
    with pytest.raises(CheckpointWriteError, match="No space left on device.*no checkpoint was written before"):
        trainer.fit()
