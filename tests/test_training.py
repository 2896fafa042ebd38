"""The training loop: it learns the oracle score, resumes exactly, stops on non-finite losses, logs metrics."""

import json
import math

import pytest
import torch
from standins import TinyScore, gaussian_data

from scoresde import VPSDE, dsm_loss
from scoresde.cli.snapshots import LossCurve
from scoresde.training import NonFiniteLossError, TrainConfig, Trainer
from scoresde.training.checkpoint import CheckpointManager
from scoresde.training.ema import EMA


def _config(**overrides):
    base = dict(steps=12, batch_size=32, lr=3e-3, warmup_steps=3, log_every=2, checkpoint_every=4, ema_decay=0.9)
    return TrainConfig(**{**base, **overrides})


def _trainer(tmp_path, config, *, seed=0, dropout=0.5, **kwargs):
    torch.manual_seed(123)  # the initial weights
    model = TinyScore(VPSDE(), dropout=dropout)
    _, data = gaussian_data(256)
    return Trainer(model, data, config, run_dir=tmp_path, seed=seed, progress=False, **kwargs)


def _dsm_minimum(sde, eigvals, eps, n=20001):
    """E_t mean_k (1 - s^2 / (m^2 v_k + s^2)), t ~ U(eps, T): the DSM loss of the exact score."""
    t = torch.linspace(eps, sde.T, n, dtype=torch.float64)
    m, s = sde.mean_scale(t), sde.std(t)
    vals = (1 - s[:, None] ** 2 / (m[:, None] ** 2 * eigvals + s[:, None] ** 2)).mean(1)
    return float(torch.trapezoid(vals, t) / (sde.T - eps))


def test_training_approaches_the_oracle_loss(tmp_path):
    """After training, the EMA model's DSM loss on fresh data is close to the loss of the exact score."""
    sde = VPSDE()
    oracle, data = gaussian_data(4096)
    torch.manual_seed(0)
    model = TinyScore(sde, width=64)
    cfg = TrainConfig(steps=600, batch_size=256, lr=1e-2, warmup_steps=20, checkpoint_every=600, ema_decay=0.99)
    result = Trainer(model, data, cfg, run_dir=tmp_path, progress=False, callbacks=[LossCurve()]).fit()
    assert result.step == 600
    ema = torch.load(result.checkpoint, weights_only=True)["ema"]["model"]
    model.load_state_dict(ema)
    test = oracle.sample(40000, generator=torch.Generator().manual_seed(9)).float()
    with torch.no_grad():
        trained = float(dsm_loss(sde, model, test, eps=1e-3, generator=torch.Generator().manual_seed(1)))
        exact = float(dsm_loss(sde, oracle.score_fn(sde), test, eps=1e-3, generator=torch.Generator().manual_seed(1)))
    minimum = _dsm_minimum(sde, torch.tensor([0.09, 1.44], dtype=torch.float64), 1e-3)
    assert abs(exact - minimum) < 0.01  # the Monte-Carlo estimate itself
    assert trained < minimum + 0.015, (trained, minimum)  # untrained: 0.85, minimum: 0.21
    assert (tmp_path / "loss.png").stat().st_size > 0


def test_resume_reproduces_an_uninterrupted_run(tmp_path):
    """Crash at step 10 (last checkpoint: step 8), resume, finish: same weights, EMA and optimiser state."""
    full = _trainer(tmp_path / "full", _config())
    full.fit()

    class Crash(Exception):
        pass

    def crash(model, step):
        if step == 10:
            raise Crash

    cut = _trainer(tmp_path / "cut", _config(sample_every=5), snapshot=crash)
    with pytest.raises(Crash):
        cut.fit()
    assert cut.step == 10
    latest = CheckpointManager(tmp_path / "cut" / "checkpoints").latest()
    assert latest.name == "ckpt_00000008.pt"

    resumed = _trainer(tmp_path / "cut", _config(), seed=0)
    resumed.resume(latest)
    assert resumed.step == 8
    resumed.fit()
    for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    for a, b in zip(full.ema.model.state_dict().values(), resumed.ema.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    sa, sb = full.optimizer.state_dict()["state"], resumed.optimizer.state_dict()["state"]
    assert all(torch.equal(sa[k]["exp_avg_sq"], sb[k]["exp_avg_sq"]) for k in sa)
    # metrics.jsonl: the lines written after step 8 by the crashed run were dropped, then rewritten once
    steps = [json.loads(line)["step"] for line in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert steps == list(range(2, 13, 2))


def test_a_different_seed_gives_different_weights(tmp_path):
    """The resume test above would pass trivially if the run ignored its randomness; it does not."""
    a = _trainer(tmp_path / "a", _config(steps=4), seed=0)
    b = _trainer(tmp_path / "b", _config(steps=4), seed=1)
    a.fit(), b.fit()
    assert not torch.equal(a.model.net[0].weight, b.model.net[0].weight)


def test_keeps_only_the_last_k_checkpoints(tmp_path):
    trainer = _trainer(tmp_path, _config(steps=11, checkpoint_every=2, keep_checkpoints=3))
    result = trainer.fit()
    names = [p.name for p in CheckpointManager(tmp_path / "checkpoints").paths()]
    assert names == ["ckpt_00000008.pt", "ckpt_00000010.pt", "ckpt_00000011.pt"]
    assert result.checkpoint.name == "ckpt_00000011.pt"
    assert not list((tmp_path / "checkpoints").glob("*.tmp"))


class _NaNAfter:
    """A DSM objective that returns NaN from its ``n``-th call on."""

    def __init__(self, n):
        self.n, self.calls = n, 0

    def __call__(self, model, x0, generator):
        self.calls += 1
        loss = dsm_loss(model.sde, model, x0, generator=generator)
        return loss * math.nan if self.calls >= self.n else loss


def test_non_finite_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(tmp_path):
    trainer = _trainer(tmp_path, _config(steps=20, checkpoint_every=5, objective=_NaNAfter(7)))
    with pytest.raises(NonFiniteLossError, match=r"at step 7; .*ckpt_00000005\.pt"):
        trainer.fit()
    assert trainer.step == 6
    assert [p.name for p in CheckpointManager(tmp_path / "checkpoints").paths()] == ["ckpt_00000005.pt"]
    state = torch.load(tmp_path / "checkpoints" / "ckpt_00000005.pt", weights_only=True)
    assert all(torch.isfinite(v).all() for v in state["model"].values())


def test_metrics_lines_and_warmup(tmp_path):
    _trainer(tmp_path, _config(steps=7, log_every=3, warmup_steps=4, lr=1e-3)).fit()
    rows = [json.loads(line) for line in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [3, 6, 7]
    assert [r["lr"] for r in rows] == pytest.approx([0.75e-3, 1e-3, 1e-3])
    assert all(math.isfinite(r["loss"]) and r["steps_per_s"] > 0 for r in rows)


def test_grad_clip_bounds_the_update():
    """With lr warm-up off and a tiny clip, Adam's first step moves each weight by at most lr (|m/sqrt(v)| = 1)."""
    _, data = gaussian_data(64)
    torch.manual_seed(0)
    model = TinyScore(VPSDE())
    before = [p.detach().clone() for p in model.parameters()]
    cfg = TrainConfig(steps=1, batch_size=64, lr=1e-3, warmup_steps=0, grad_clip=1e-6, checkpoint_every=1)
    Trainer(model, data, cfg, progress=False).fit()
    moved = max(float((p.detach() - q).abs().max()) for p, q in zip(model.parameters(), before, strict=True))
    assert 0 < moved <= 1e-3 * (1 + 1e-4)


def test_ema_matches_the_closed_form_average():
    """Without warm-up, after n updates towards fixed weights w: ema = w + d^n (w0 - w)."""
    model = torch.nn.Linear(3, 2)
    w0 = model.weight.detach().clone()
    ema = EMA(model, decay=0.8, warmup=False)
    with torch.no_grad():
        model.weight.add_(1.0)
    for _ in range(5):
        ema.update(model)
    expected = model.weight + 0.8**5 * (w0 - model.weight)
    torch.testing.assert_close(ema.model.weight, expected)
    assert EMA(model, decay=0.999).rate() == pytest.approx(0.1)  # warm-up: (1 + 0) / (10 + 0)


def test_bad_settings_are_rejected():
    with pytest.raises(ValueError, match="precision"):
        TrainConfig(precision="fp8")
    with pytest.raises(ValueError, match="batch_size"):
        Trainer(TinyScore(VPSDE()), gaussian_data(16)[1], TrainConfig(batch_size=32), progress=False)
    with pytest.raises(ValueError, match="CUDA"):
        Trainer(TinyScore(VPSDE()), gaussian_data(64)[1], TrainConfig(batch_size=32, precision="bf16"), progress=False)


def test_callbacks_see_every_logged_record_and_the_end_of_training(tmp_path):
    """The trainer reports through callbacks: on_log with each metrics.jsonl record, on_fit_end once with the result."""
    from scoresde.training import Callback

    class Recorder(Callback):
        def __init__(self):
            self.records, self.ends = [], []

        def on_log(self, trainer, record):
            self.records.append(record)

        def on_fit_end(self, trainer, result):
            self.ends.append((trainer.step, result.step))

    recorder = Recorder()
    result = _trainer(tmp_path, _config(steps=6, log_every=2), callbacks=[recorder]).fit()
    logged = [json.loads(ln) for ln in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert recorder.records == logged and [r["step"] for r in logged] == [2, 4, 6]
    assert recorder.ends == [(6, 6)] and result.step == 6
    assert not (tmp_path / "loss.png").exists()  # figures are the CLI's callback (LossCurve), not the trainer's


def test_moved_names_say_where_they_went():
    import scoresde.conditioning
    import scoresde.training

    with pytest.raises(AttributeError, match="scoresde.cli.snapshots.SampleSnapshot"):
        scoresde.training.SampleSnapshot  # noqa: B018
    with pytest.raises(AttributeError, match="scoresde.cli.tasks.Task"):
        scoresde.conditioning.Task  # noqa: B018
