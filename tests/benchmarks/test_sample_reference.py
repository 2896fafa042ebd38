"""benchmarks/sample_reference.py on a small checkpoint in the reference's layout (a test fixture)."""

import sys
from pathlib import Path

import numpy as np
import torch

from scoresde.models import NCSNpp
from scoresde.models.reference_checkpoint import REFERENCE_CONFIGS, ReferenceConfig

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "benchmarks"))
import sample_reference  # noqa: E402

KEYS = ("nf", "ch_mult", "num_res_blocks", "attn_resolutions", "dropout", "resamp_with_conv", "fir", "fir_kernel",
        "skip_rescale", "resblock_type", "progressive", "progressive_input", "progressive_combine", "embedding_type",
        "fourier_scale", "init_scale", "centered")  # fmt: skip


def test_samples_a_reference_checkpoint(tmp_path, monkeypatch):
    fixture = torch.load(ROOT / "tests/models/fixtures/reference_ncsnpp_ve.pt", weights_only=True)
    torch.save(fixture["checkpoint"], tmp_path / "checkpoint_7.pth")
    small = ReferenceConfig(NCSNpp, "ve", {k: fixture["config"][k] for k in KEYS})
    monkeypatch.setitem(REFERENCE_CONFIGS, "test/small", small)
    monkeypatch.setattr(sample_reference.scoresde, "load_reference_checkpoint",
                        _small_shape(sample_reference.scoresde.load_reference_checkpoint))  # fmt: skip
    sample_reference.main(["--ckpt", str(tmp_path / "checkpoint_7.pth"), "--config", "test/small", "--solver", "ode",
                           "--options", '{"method": "euler"}', "--steps", "2", "--n", "5", "--batch-size", "2",
                           "--device", "cpu", "--out", str(tmp_path / "out")])  # fmt: skip
    with np.load(tmp_path / "out" / "samples.npz") as f:
        assert f["samples"].shape == (5, 3, 8, 8) and np.isfinite(f["samples"]).all()
        assert f["nfe_per_batch"].tolist() == [3, 3, 3]
    assert (tmp_path / "out" / "samples.png").is_file()


def _small_shape(load):
    def wrapped(*args, **kwargs):
        return load(*args, event_shape=(3, 8, 8), **kwargs)

    return wrapped
