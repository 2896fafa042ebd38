"""Label-conditional networks (the null label K gives the unconditional score) and label dropout in training."""

import pytest
import torch

import scoresde
from scoresde.conditioning import classifier_free_guidance
from scoresde.models import MLP, LabelEmbedding, ScoreModel, UNet
from scoresde.oracle import Gaussian, GaussianMixture
from scoresde.training import TrainConfig, Trainer
from scoresde.training.objectives import DSMObjective, drop_labels

NETS = {
    "mlp": lambda k: MLP((2,), width=32, num_blocks=1, num_classes=k),
    "unet": lambda k: UNet((1, 8, 8), channels=8, ch_mult=(1, 2), num_classes=k),
}


@pytest.fixture(params=sorted(NETS))
def net_name(request):
    return request.param


def _inputs(name, b=6):
    gen = torch.Generator().manual_seed(0)
    shape = (b, 2) if name == "mlp" else (b, 1, 8, 8)
    return torch.randn(shape, generator=gen), 999 * torch.rand(b, generator=gen)


def test_fresh_conditional_net_is_the_unconditional_one(net_name):
    """The label table starts at zero: same output for every label, and the same weights otherwise."""
    torch.manual_seed(0)
    cond = NETS[net_name](3)
    torch.manual_seed(0)
    plain = NETS[net_name](None)
    plain.load_state_dict({k: v for k, v in cond.state_dict().items() if not k.startswith("label.")})
    for p in plain.parameters():  # zero-initialised outputs would make every comparison trivial
        torch.nn.init.normal_(p, std=0.1)
    cond.load_state_dict(plain.state_dict() | {"label.table.weight": torch.zeros(4, cond.label.table.weight.shape[1])})
    x, c = _inputs(net_name)
    expected = plain(x, c)
    for y in (None, torch.zeros(6, dtype=torch.long), torch.full((6,), 3)):
        torch.testing.assert_close(cond(x, c, y), expected)


def test_labels_change_the_output_and_null_is_none(net_name):
    torch.manual_seed(0)
    net = NETS[net_name](3)
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.1)
    x, c = _inputs(net_name)
    y = torch.tensor([0, 1, 2, 0, 1, 2])
    out = net(x, c, y)
    assert not torch.allclose(out, net(x, c, (y + 1) % 3))
    torch.testing.assert_close(net(x, c, torch.full((6,), 3)), net(x, c))
    # each sample's output depends on its own label only
    torch.testing.assert_close(net(x[:1], c[:1], y[:1]), out[:1])


def test_unconditional_nets_keep_their_state_dict_and_refuse_labels(net_name):
    net = NETS[net_name](None)
    assert net.num_classes is None and not any(k.startswith("label") for k in net.state_dict())
    x, c = _inputs(net_name)
    with pytest.raises(ValueError, match="num_classes"):
        net(x, c, torch.zeros(6, dtype=torch.long))


def test_bad_labels_are_rejected():
    emb = LabelEmbedding(3, 4)
    with pytest.raises(ValueError, match="0..3"):
        emb(torch.tensor([4]), 1)
    with pytest.raises(ValueError, match="shape"):
        emb(torch.tensor([0, 1]), 3)
    with pytest.raises(ValueError, match="shape"):
        emb(torch.tensor([0.0]), 1)
    with pytest.raises(ValueError, match="num_classes"):
        LabelEmbedding(0, 4)


def test_score_model_passes_labels(sde):
    torch.manual_seed(0)
    net = MLP((2,), width=32, num_blocks=1, num_classes=2)
    for p in net.parameters():
        torch.nn.init.normal_(p, std=0.1)
    model = ScoreModel(net, sde)
    assert model.num_classes == 2 and ScoreModel(MLP((2,)), sde).num_classes is None
    x, t = torch.randn(4, 2), torch.full((4,), 0.5)
    y = torch.tensor([0, 1, 0, 1])
    torch.testing.assert_close(model(x, t, torch.full((4,), 2)), model(x, t))
    c = model.net_time(t)
    torch.testing.assert_close(model(x, t, y), -net(model.input_scale(t)[:, None] * x, c, y) / sde.std(t)[:, None])


def test_drop_labels_rate_and_generator():
    y = torch.zeros(20000, dtype=torch.long)
    out = drop_labels(y, 0.1, 7, torch.Generator().manual_seed(0))
    assert set(out.unique().tolist()) == {0, 7}
    assert abs(float((out == 7).double().mean()) - 0.1) < 5 * (0.1 * 0.9 / 20000) ** 0.5
    torch.testing.assert_close(out, drop_labels(y, 0.1, 7, torch.Generator().manual_seed(0)))
    assert drop_labels(y, 0.0, 7) is y
    assert bool((drop_labels(y, 1.0, 7) == 7).all())
    with pytest.raises(ValueError, match="label dropout"):
        drop_labels(y, 1.5, 7)
    with pytest.raises(ValueError, match="label_dropout"):
        TrainConfig(label_dropout=-0.1)


def test_dsm_objective_with_labels_is_the_conditional_loss():
    """The labelled DSM loss is the DSM loss of the score with the labels bound (same noise draws)."""
    sde = scoresde.VPSDE()
    torch.manual_seed(0)
    model = ScoreModel(MLP((2,), width=16, num_blocks=1, num_classes=2), sde)
    for p in model.parameters():
        torch.nn.init.normal_(p, std=0.1)
    x0, y = torch.randn(32, 2), torch.arange(32) % 2
    a = DSMObjective()(model, x0, torch.Generator().manual_seed(1), y)
    b = scoresde.dsm_loss(sde, lambda x, t: model(x, t, y), x0, generator=torch.Generator().manual_seed(1))
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, DSMObjective()(model, x0, torch.Generator().manual_seed(1)))


def test_trainer_refuses_labels_for_an_unconditional_model():
    model = ScoreModel(MLP((2,), width=16, num_blocks=1), scoresde.VPSDE())
    with pytest.raises(ValueError, match="num_classes"):
        Trainer(model, torch.randn(64, 2), TrainConfig(batch_size=32), labels=torch.zeros(64, dtype=torch.long),
                progress=False)  # fmt: skip


@pytest.mark.slow
def test_label_dropout_training_learns_conditional_and_unconditional_scores():
    """A small MLP trained with label dropout on two labelled modes: CFG at w = 0 samples the requested mode,
    the null label samples both modes in their proportions."""
    modes = GaussianMixture([Gaussian([-1.5, 0.0], std=0.3), Gaussian([1.5, 0.0], std=0.3)], [0.7, 0.3])
    x0, y = modes.sample_with_labels(4096, generator=torch.Generator().manual_seed(0))
    sde = scoresde.VPSDE()
    torch.manual_seed(0)
    model = ScoreModel(MLP((2,), width=64, num_blocks=2, num_classes=2), sde)
    cfg = TrainConfig(steps=600, batch_size=256, lr=3e-3, warmup_steps=50, ema_decay=0.99, label_dropout=0.2)
    trainer = Trainer(model, x0, cfg, labels=y, progress=False)
    trainer.fit()
    ema = trainer.ema.model.eval()
    gen = torch.Generator().manual_seed(1)
    side = lambda x: (x[:, 0] > 0).long()  # noqa: E731
    for k in (0, 1):
        x, _ = scoresde.sample(sde, classifier_free_guidance(ema, k, 0.0), (400, 2), solver="ancestral", steps=100,
                               generator=gen)  # fmt: skip
        assert float((side(x) == k).double().mean()) > 0.95
    x, _ = scoresde.sample(sde, ema, (1000, 2), solver="ancestral", steps=100, generator=gen)
    assert abs(float(side(x).double().mean()) - 0.3) < 0.07


def test_resume_with_label_dropout_reproduces_an_uninterrupted_run(tmp_path):
    """Dropout draws come from the checkpointed generator: stop at step 8, resume, finish: the same weights."""
    x0 = torch.randn(128, 2, generator=torch.Generator().manual_seed(0))
    labels = torch.arange(128) % 3

    def trainer(run_dir, steps):
        torch.manual_seed(1)
        model = ScoreModel(MLP((2,), width=16, num_blocks=1, num_classes=3), scoresde.VPSDE())
        cfg = TrainConfig(steps=steps, batch_size=32, warmup_steps=2, checkpoint_every=4, label_dropout=0.3)
        return Trainer(model, x0, cfg, run_dir=run_dir, labels=labels, progress=False)

    full = trainer(tmp_path / "full", 12)
    full.fit()
    trainer(tmp_path / "cut", 8).fit()
    resumed = trainer(tmp_path / "cut", 12)
    resumed.resume(tmp_path / "cut" / "checkpoints" / "ckpt_00000008.pt")
    resumed.fit()
    for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    other = trainer(tmp_path / "other", 12)
    other.config.label_dropout = 0.0  # the labels matter: without dropout the weights differ
    other.fit()
    assert not torch.equal(full.model.net.label.table.weight, other.model.net.label.table.weight)
