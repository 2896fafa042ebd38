"""The likelihood evaluation script on checkpoints written in the documented format (scoresde.training.checkpoint)."""

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

import scoresde
from scoresde._instantiate import build_score_model, instantiate
from scoresde.cli._runtime import CONF_DIR
from scoresde.cli.likelihood import choose_divergence, evaluate, format_summary
from scoresde.distributed import chunk_generator
from scoresde.training.checkpoint import FORMAT, VERSION


def _likelihood_config(ckpt: Path, *overrides: str) -> dict:
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("likelihood", overrides=[f"ckpt={ckpt}", "progress=false", *overrides])
    return OmegaConf.to_container(cfg, resolve=True)


def _write_checkpoint(path: Path, data: str) -> Path:
    """A small untrained MLP score model for ``data``, saved as the training loop saves checkpoints."""
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=[f"data={data}", "sde=vp", "model=mlp", "model.net.width=16"])
    config = OmegaConf.to_container(cfg, resolve=True)
    dataset = instantiate(config["data"]["dataset"])
    event_shape = tuple(dataset.event_shape)
    torch.manual_seed(0)
    model = build_score_model(config["model"], instantiate(config["sde"]), event_shape, data=dataset.train)
    state = {
        "format": FORMAT,
        "version": VERSION,
        "step": 7,
        "event_shape": list(event_shape),
        "model": model.state_dict(),
        "ema": {"model": model.state_dict(), "num_updates": 7, "decay": 0.999},
        "config": config,
    }
    path.mkdir(parents=True, exist_ok=True)
    torch.save(state, path / "ckpt_00000007.pt")
    return path / "ckpt_00000007.pt"


@pytest.fixture(scope="module")
def mixture_ckpt(tmp_path_factory):
    return _write_checkpoint(tmp_path_factory.mktemp("mixture") / "checkpoints", "mixture")


def test_continuous_data_in_batches_matches_one_direct_solve(mixture_ckpt):
    """nats/dim over 3 batches equals log_likelihood on all 12 examples at once (batch independence)."""
    cfg = _likelihood_config(mixture_ckpt, "limit=12", "batch_size=5", "divergence=exact", "device=cpu")
    summary = evaluate(cfg, torch.device("cpu"))
    ckpt = scoresde.load_checkpoint(mixture_ckpt)
    x = ckpt.load_dataset().split("test")[:12]
    direct = scoresde.log_likelihood(ckpt.sde, ckpt.score_fn, x, divergence="exact").nats_per_dim
    assert summary["unit"] == "nats/dim" and summary["n"] == 12 and summary["step"] == 7
    assert len(summary["nfe_per_batch"]) == 3 and all(n > 0 for n in summary["nfe_per_batch"])
    assert summary["model"]["mean"] == pytest.approx(float(direct.mean()), abs=1e-3)
    assert summary["model"]["stderr"] == pytest.approx(float(direct.double().std()) / math.sqrt(12), rel=0.05)
    assert set(summary["baselines"]) == {"gaussian (full covariance)"}
    assert "nats/dim" in format_summary(summary)
    json.dumps(summary)


def test_discrete_data_reports_bits_per_dim_and_both_baselines(tmp_path):
    ckpt_path = _write_checkpoint(tmp_path / "checkpoints", "digits")
    cfg = _likelihood_config(ckpt_path, "limit=6", "n_dequant=2", "rtol=1e-3", "atol=1e-3", "device=cpu")
    summary = evaluate(cfg, torch.device("cpu"))
    assert summary["unit"] == "bits/dim" and summary["settings"]["divergence"] == "rademacher"  # auto, D = 64
    assert set(summary["baselines"]) == {"per-pixel categorical", "gaussian (full covariance)"}
    assert summary["model_importance_weighted"]["mean"] <= summary["model"]["mean"]
    assert summary["settings"]["centred_bins"] is True  # auto: the digits config trains dequantised (centred bins)
    # one batch (batch 0, seeded by scoresde.distributed.chunk_generator): the same noise and probes as a direct call
    ckpt = scoresde.load_checkpoint(tmp_path)  # a run directory resolves to its newest checkpoint
    data = ckpt.load_dataset()
    direct = scoresde.bits_per_dim(ckpt.sde, ckpt.score_fn, data.test[:6], levels=17, n_dequant=2,
                                   generator=chunk_generator(0, 0), divergence="rademacher", centred_bins=True,
                                   rtol=1e-3, atol=1e-3)  # fmt: skip
    assert summary["model"]["mean"] == pytest.approx(direct.mean, abs=1e-9)
    overrides = ("limit=6", "n_dequant=2", "centred_bins=false", "rtol=1e-3", "atol=1e-3")
    centred = evaluate(_likelihood_config(ckpt_path, *overrides), torch.device("cpu"))
    assert centred["settings"]["centred_bins"] is False
    assert centred["model"]["mean"] != pytest.approx(summary["model"]["mean"], abs=1e-6)  # other bins, other bound
    # both baselines are blind to the bin convention: the categorical is discrete, the Gaussian affine-equivariant
    for name, value in summary["baselines"].items():
        assert centred["baselines"][name]["mean"] == pytest.approx(value["mean"], abs=1e-9)


def test_module_entry_point_writes_the_json_summary(mixture_ckpt, tmp_path):
    """``python -m scoresde.likelihood ckpt=... data=NAME`` end to end, in a fresh process."""
    run_dir = tmp_path / "run"
    cmd = [sys.executable, "-m", "scoresde.likelihood", f"ckpt={mixture_ckpt.parent}", "data=mixture", "split=train",
           "limit=4", "rtol=1e-3", "atol=1e-3", "device=cpu", "threads=1", "progress=false",
           f"hydra.run.dir={run_dir}"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "found in sys.modules" not in proc.stderr  # the package runs its __main__.py: no runpy double-import warning
    summary = json.loads((run_dir / "likelihood.json").read_text())
    assert summary["split"] == "train" and summary["n"] == 4 and summary["dataset"] == "mixture"
    assert "±" in proc.stdout and "NFE per batch" in proc.stdout


def test_bad_settings(mixture_ckpt):
    with pytest.raises(ValueError, match="limit"):
        evaluate(_likelihood_config(mixture_ckpt, "limit=0"), torch.device("cpu"))
    with pytest.raises(ValueError, match="split"):
        evaluate(_likelihood_config(mixture_ckpt, "split=valid"), torch.device("cpu"))
    with pytest.raises(ValueError, match="event shape"):
        evaluate(_likelihood_config(mixture_ckpt, "data=digits", "limit=2"), torch.device("cpu"))
    assert choose_divergence("auto", 2, 16) == "exact"
    assert choose_divergence("auto", 64, 16) == "rademacher"
    assert choose_divergence("gaussian", 2, 16) == "gaussian"
