"""The likelihood CLI writes every example's value, in split order, so two runs can be compared example by example."""

import numpy as np
import pytest
import torch
from cli_helpers import write_checkpoint
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import scoresde
from scoresde.cli._runtime import CONF_DIR
from scoresde.cli.likelihood import evaluate


def _config(ckpt, *overrides):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("likelihood", overrides=[f"ckpt={ckpt}", "progress=false", "device=cpu", *overrides])
    return OmegaConf.to_container(cfg, resolve=True)


def test_per_example_values_are_each_examples_own_solve(tmp_path):
    ckpt = write_checkpoint(tmp_path / "mixture" / "checkpoints", "mixture")
    summary = evaluate(_config(ckpt, "limit=7", "batch_size=3", "divergence=exact"), torch.device("cpu"), tmp_path)
    assert summary["per_example"] == ["per_example.csv", "per_example.npz"]
    saved = np.load(tmp_path / "per_example.npz")
    assert saved["index"].tolist() == list(range(7)) and str(saved["unit"]) == "nats/dim"
    model = scoresde.load_checkpoint(ckpt)
    x = model.load_dataset().split("test")[:7]
    direct = scoresde.log_likelihood(model.sde, model.score_fn, x, divergence="exact").nats_per_dim
    np.testing.assert_allclose(saved["value"], direct.double().numpy(), atol=1e-3)
    assert summary["model"]["mean"] == pytest.approx(float(saved["value"].mean()), abs=1e-9)
    lines = (tmp_path / "per_example.csv").read_text().splitlines()
    assert lines[0] == "index,nats_per_dim" and len(lines) == 8 and lines[3].startswith("2,")


def test_discrete_data_also_store_the_importance_weighted_values(tmp_path):
    ckpt = write_checkpoint(tmp_path / "digits" / "checkpoints", "digits")
    summary = evaluate(_config(ckpt, "limit=3", "n_dequant=2", "rtol=1e-3", "atol=1e-3"), torch.device("cpu"),
                       tmp_path)  # fmt: skip
    saved = np.load(tmp_path / "per_example.npz")
    assert str(saved["unit"]) == "bits/dim" and saved["value"].shape == saved["value_iw"].shape == (3,)
    assert summary["model_importance_weighted"]["mean"] == pytest.approx(float(saved["value_iw"].mean()), abs=1e-9)
    assert (tmp_path / "per_example.csv").read_text().splitlines()[0] == "index,bits_per_dim,importance_weighted"
