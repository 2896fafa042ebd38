"""NCSN++ / DDPM++ reproduce the reference implementation (yang-song/score_sde_pytorch) to float32 round-off.

The fixtures come from ``benchmarks/reference_fixtures.py``, which runs the reference's own model code on small
configurations with random weights: each holds a checkpoint in the reference's layout (DataParallel ``module.``
keys, model / ema / optimizer / step), fixed inputs, the network outputs for the raw and the EMA weights, and the
reference ``get_score_fn`` scores.
"""

import gzip
import json
from pathlib import Path

import pytest
import torch
from hydra.utils import instantiate
from omegaconf import OmegaConf

import scoresde
from scoresde.models import DDPMpp, NCSNpp, count_parameters
from scoresde.models.reference_checkpoint import (
    REFERENCE_CONFIGS,
    convert_state_dict,
    load_reference_checkpoint,
    load_reference_weights,
    reference_score_fn,
    reference_sde,
)

FIXTURES = Path(__file__).parent / "fixtures"
CONF = Path(__file__).resolve().parents[2] / "conf"
SMALL = ["ncsnpp_ve", "ddpmpp_vp", "ncsnpp_subvp", "ncsnpp_skip", "ncsnpp_residual_ddpm_blocks"]
NET_KEYS = ("nf", "ch_mult", "num_res_blocks", "attn_resolutions", "dropout", "resamp_with_conv", "fir",
            "fir_kernel", "skip_rescale", "resblock_type", "progressive", "progressive_input", "progressive_combine",
            "embedding_type", "fourier_scale", "init_scale", "centered")  # fmt: skip


def _load(name):
    fixture = torch.load(FIXTURES / f"reference_{name}.pt", weights_only=True)
    cfg = fixture["config"]
    net = NCSNpp((3, 8, 8), **{k: cfg[k] for k in NET_KEYS})
    return fixture, cfg, net


def _close(a, b):
    torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-5 * float(b.abs().max()))


@pytest.mark.parametrize("name", SMALL)
@pytest.mark.parametrize("ema", [False, True])
def test_network_outputs_equal_the_reference(name, ema):
    fixture, cfg, net = _load(name)
    load_reference_weights(net, fixture["checkpoint"], ema=ema)
    with torch.no_grad():
        out = net.eval()(fixture["x"], fixture["labels"])
    if cfg["scale_by_sigma"]:  # the reference divides by the noise level inside the network
        out = out / fixture["labels"].view(-1, 1, 1, 1)
    expected = fixture["output_ema" if ema else "output"]
    assert not torch.allclose(fixture["output"], fixture["output_ema"], atol=1e-3)  # the two weight sets differ
    _close(out, expected)


@pytest.mark.parametrize("name", SMALL)
def test_score_functions_equal_the_reference_get_score_fn(name):
    fixture, cfg, net = _load(name)
    load_reference_weights(net, fixture["checkpoint"], ema=False)
    sde = reference_sde(cfg["sde"])
    score_fn = reference_score_fn(net.eval(), sde, cfg["sde"])
    x, t = fixture["x"], fixture["t"]
    with torch.no_grad():
        if cfg["sde"] == "ve":  # the reference's data are in [0, 1], the library's in [-1, 1]: x' = 2x - 1
            score = 2 * score_fn(2 * x - 1, t)
        else:
            score = score_fn(x, t)
    _close(score, fixture["score"])


def test_load_reference_checkpoint_from_a_file(tmp_path):
    fixture, cfg, _ = _load("ncsnpp_ve")
    torch.save(fixture["checkpoint"], tmp_path / "checkpoint_7.pth")
    spec = REFERENCE_CONFIGS["ve/cifar10_ncsnpp_continuous"]
    small = {k: cfg[k] for k in NET_KEYS}
    # the released configuration refuses a small checkpoint, naming the mismatch
    with pytest.raises(ValueError, match="different configuration"):
        load_reference_checkpoint(tmp_path / "checkpoint_7.pth", "ve/cifar10_ncsnpp_continuous")
    with pytest.raises(ValueError, match="config_name must be one of"):
        load_reference_checkpoint(tmp_path / "checkpoint_7.pth", "ve/cifar10_ncsnpp")
    # the same loader with the fixture's small shape: patch the registry entry for the test
    REFERENCE_CONFIGS["test/small"] = type(spec)(NCSNpp, "ve", small)
    try:
        ckpt = load_reference_checkpoint(tmp_path / "checkpoint_7.pth", "test/small", event_shape=(3, 8, 8))
    finally:
        del REFERENCE_CONFIGS["test/small"]
    assert ckpt.step == 7 and ckpt.sde.sigma_max == 100.0 and ckpt.event_shape == (3, 8, 8)
    with torch.no_grad():
        out = ckpt.net(fixture["x"], fixture["labels"]) / fixture["labels"].view(-1, 1, 1, 1)
    _close(out, fixture["output_ema"])
    # the score function and SDE drive the library's samplers and likelihoods
    gen = torch.Generator().manual_seed(0)
    x, info = scoresde.sample(ckpt.sde, ckpt.score_fn, (2, 3, 8, 8), solver="ode", method="euler", steps=3,
                              generator=gen)  # fmt: skip
    assert x.shape == (2, 3, 8, 8) and torch.isfinite(x).all() and info.nfe == 4
    res = scoresde.log_likelihood(ckpt.sde, ckpt.score_fn, torch.rand(2, 3, 8, 8) * 2 - 1, divergence="rademacher",
                                  method="euler", generator=gen)  # fmt: skip
    assert torch.isfinite(res.logp).all()


def test_conversion_names_the_first_mismatch():
    fixture, cfg, _ = _load("ddpmpp_vp")
    other = NCSNpp((3, 8, 8), **({k: cfg[k] for k in NET_KEYS} | {"progressive_input": "residual"}))
    with pytest.raises(ValueError, match="all_modules|different configuration"):
        convert_state_dict(other, fixture["checkpoint"]["model"])


COUNTS = json.loads((FIXTURES / "reference_param_counts.json").read_text())


@pytest.mark.parametrize("name", ["ncsnpp", "ncsnpp_deep", "ddpmpp", "ddpmpp_deep"])
def test_paper_configs_have_the_reference_parameter_counts(name):
    cfg = OmegaConf.load(CONF / "model" / f"{name}.yaml")
    with torch.device("meta"):
        net = instantiate(cfg.net, event_shape=(3, 32, 32))
    fixed = sum(b.numel() for n, b in net.named_buffers() if n.endswith("fourier.W"))
    assert count_parameters(net) == COUNTS[name]["trainable"]
    assert count_parameters(net) + fixed == COUNTS[name]["parameters"]
    assert isinstance(net, NCSNpp if name.startswith("ncsnpp") else DDPMpp)


LAYOUTS = json.loads(gzip.decompress((FIXTURES / "reference_layouts.json.gz").read_bytes()))


@pytest.mark.parametrize("config_name", sorted(REFERENCE_CONFIGS))
def test_released_checkpoint_layouts_map_onto_the_configured_networks(config_name):
    """Every released CIFAR-10 configuration: the reference's DataParallel keys and shapes (no weights) convert."""
    spec = REFERENCE_CONFIGS[config_name]
    with torch.device("meta"):
        net = spec.net((3, 32, 32), **spec.net_kwargs)
        reference = {key: torch.empty(shape) for key, shape in LAYOUTS[config_name]}
    assert list(convert_state_dict(net, reference)) == list(net.state_dict())
    # the EMA's shadow list holds the reference's trainable parameters: all but the sigmas buffer and Fourier W
    fixed = {"module.sigmas", "module.all_modules.0.W"}
    assert len(list(net.parameters())) == len([k for k, _ in LAYOUTS[config_name] if k not in fixed])
