"""Every CLI setting is checked before the run starts; the error names the key and what it accepts."""

import pytest
from hydra import compose, initialize_config_dir

from scoresde.cli._preflight import resumed_config
from scoresde.cli._runtime import CONF_DIR, setup_runtime
from scoresde.cli._settings import validate_likelihood, validate_sample, validate_train


def _config(name, *overrides):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        return compose(name, overrides=list(overrides))


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("sample.steps=0", "sample.steps must be an integer >= 1 or null"),
        ("sample.n=abc", "sample.n must be an integer >= 1, got 'abc'"),
        ("eval.divergence=nonsense", "eval.divergence must be one of auto, exact, gaussian, rademacher"),
        ("eval.rtol=-1", "eval.rtol must be a positive finite number, got -1"),
        ("eval.n_test=-2", "eval.n_test must be an integer >= 0"),
        ("+eval.foo=1", "eval has unknown key"),
        ("train.lr=abc", "train: lr must be a positive number, got 'abc'"),
        ("train.steps=abc", "train: steps must be an integer >= 1, got 'abc'"),
        ("train.batch_size=0", "train: batch_size must be an integer >= 1, got 0"),
        ("train.precision=fp8", "train: precision must be one of"),
        ("train.ema_decay=1.5", "train: ema_decay must lie in [0, 1)"),
        ("seed=abc", "seed must be an integer >= 0, got 'abc'"),
        ("threads=0", "threads must be an integer >= 1 or null"),
        ("threads=-3", "threads must be an integer >= 1 or null"),
        ("progress=maybe", "progress must be true or false"),
        ("device=tpu", "device: device must be 'auto', 'cpu', 'cuda' or 'cuda:N'"),
        ("solver=pc solver.snr=-1", "solver: snr must be a positive finite number"),
        ("data.dequantize=maybe", "data.dequantize must be true or false, got 'maybe'"),
        ("solver=pc_vp", None),  # a good one
    ],
)
def test_train_settings(override, message):
    cfg = _config("config", *override.split())
    if message is None:
        validate_train(cfg)
        return
    with pytest.raises(ValueError) as err:
        validate_train(cfg)
    assert message in str(err.value)


def test_sample_and_likelihood_settings(tmp_path):
    with pytest.raises(ValueError, match="ckpt=PATH is required"):
        validate_sample(_config("sample"))
    with pytest.raises(ValueError, match="ckpt: no checkpoint file or run directory"):
        validate_sample(_config("sample", f"ckpt={tmp_path / 'none'}"))
    for bad, message in [("n=0", "n must be"), ("steps=abc", "steps must be"), ("progress=1", "progress must be")]:
        with pytest.raises(ValueError, match=message):
            validate_sample(_config("sample", f"ckpt={tmp_path}", bad))
    validate_sample(_config("sample", f"ckpt={tmp_path}", "progress=false"))
    for bad, message in [("split=valid", "split must be one of"), ("method=rk5", "method must be one of"),
                         ("batch_size=0", "batch_size must be"), ("threads=0", "threads must be")]:  # fmt: skip
        with pytest.raises(ValueError, match=message):
            validate_likelihood(_config("likelihood", f"ckpt={tmp_path}", bad))
    validate_likelihood(_config("likelihood", f"ckpt={tmp_path}"))


def test_every_cli_defaults_to_one_thread():
    for name in ("config", "sample", "likelihood"):
        assert _config(name, "+ckpt=x" if name == "config" else "ckpt=x").threads == 1


def test_threads_null_means_the_available_cores_and_zero_is_refused():
    import os

    assert setup_runtime("cpu", None).threads == len(os.sched_getaffinity(0))
    assert setup_runtime("cpu", 1).threads == 1
    for bad in (0, -3, "2"):
        with pytest.raises(ValueError, match="threads must be an integer >= 1"):
            setup_runtime("cpu", bad)


def test_resume_applies_allowed_overrides_and_refuses_others():
    saved = {"train": {"steps": 6, "lr": 5e-4}, "sample": {"n": 8}, "seed": 0}
    current = {"train": {"steps": 8, "lr": 2e-3}, "sample": {"n": 3}, "seed": 0}
    effective, changed = resumed_config(saved, current, ["train.steps", "sample.n"])
    assert effective == {"train": {"steps": 8, "lr": 5e-4}, "sample": {"n": 3}, "seed": 0}
    assert changed == ["train.steps: 6 -> 8", "sample.n: 8 -> 3"]
    with pytest.raises(ValueError, match="train.lr: checkpoint 0.0005, config 0.002"):
        resumed_config(saved, current, ["train.steps", "train.lr"])
    with pytest.raises(ValueError, match="train.lr"):
        resumed_config(saved, current, ["train"])  # a group override that changes the objective settings


def test_run_directories_are_claimed_once(tmp_path, monkeypatch):
    """Two runs in the same second get TIME and TIME_1; an explicit directory that holds files is refused."""
    import copy

    from omegaconf import OmegaConf

    from scoresde.cli._preflight import claim_run_dir

    monkeypatch.chdir(tmp_path)
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        first = compose("config", return_hydra_config=True)
    OmegaConf.select(first, "hydra.run.dir")  # resolve ${now:...} once: the copy shares the timestamp
    second = copy.deepcopy(first)
    a, b = claim_run_dir(first), claim_run_dir(second)
    assert a.is_dir() and b == a.with_name(a.name + "_1") and b.is_dir()
    assert OmegaConf.select(second, "hydra.run.dir") == str(b)  # hydra writes the run into the fresh directory

    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        explicit = compose("config", overrides=[f"hydra.run.dir={a}"], return_hydra_config=True)
    assert claim_run_dir(copy.deepcopy(explicit)) == a  # empty: accepted
    (a / "metrics.jsonl").write_text("{}\n")
    with pytest.raises(ValueError, match="already holds files"):
        claim_run_dir(explicit)


def test_errors_become_one_line_and_a_fresh_empty_run_directory_goes(tmp_path, capsys, monkeypatch):
    from scoresde.cli._runtime import exit_on_error

    for var in ("SCORESDE_DEBUG", "HYDRA_FULL_ERROR"):
        monkeypatch.delenv(var, raising=False)
    fresh = tmp_path / "fresh"
    (fresh / ".hydra").mkdir(parents=True)
    (fresh / "train.log").write_text("")
    with pytest.raises(SystemExit) as stop, exit_on_error(fresh, fresh=True):
        raise ValueError("sample.steps must be an integer >= 1")
    assert stop.value.code == 1 and not fresh.exists()
    assert capsys.readouterr().err == "error: sample.steps must be an integer >= 1\n"

    kept = tmp_path / "kept"  # a run that got as far as a checkpoint keeps its directory
    (kept / "checkpoints").mkdir(parents=True)
    with pytest.raises(SystemExit), exit_on_error(kept, fresh=True):
        raise FloatingPointError("the loss became non-finite (nan) at step 7")
    err = capsys.readouterr().err
    assert kept.is_dir() and err.startswith("error: the loss became non-finite") and "SCORESDE_DEBUG=1" in err

    monkeypatch.setenv("SCORESDE_DEBUG", "1")  # the traceback, for debugging
    with pytest.raises(SystemExit), exit_on_error(status=2):
        raise ValueError("shown")
    err = capsys.readouterr().err
    assert err.startswith("Traceback") and "ValueError: shown" in err


def test_data_dequantize_needs_discrete_data_and_keeps_the_datasets_own_augmentation():
    import torch

    from scoresde.cli._runtime import SettingError
    from scoresde.cli.train import train_transform
    from scoresde.data import Chain, RandomHorizontalFlip, UniformDequantization, digits, gaussian

    ds = digits()
    assert train_transform(ds, False) is None
    assert isinstance(train_transform(ds, True), UniformDequantization)
    ds.train_transform = RandomHorizontalFlip()
    chained = train_transform(ds, True)
    assert isinstance(chained, Chain) and isinstance(chained.transforms[0], RandomHorizontalFlip)
    assert not torch.equal(chained(ds.train[:4], generator=torch.Generator().manual_seed(0)), ds.train[:4])
    with pytest.raises(SettingError, match="data.dequantize=true needs discrete data"):
        train_transform(gaussian(), True)
