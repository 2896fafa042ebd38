"""The Fashion-MNIST benchmark configs compose into the objects they name (the runs themselves are not tests)."""

import pytest
from hydra import compose, initialize_config_dir
from hydra.utils import instantiate

from scoresde.cli._runtime import CONF_DIR


@pytest.mark.parametrize("kind, channels, padded", [("cpu", 16, (28, 28)), ("gpu", 64, (32, 32))])
def test_fashion_mnist_benchmarks_compose(kind, channels, padded):
    with initialize_config_dir(config_dir=CONF_DIR, version_base="1.3"):
        cfg = compose("config", overrides=[f"+benchmark=fashion_mnist_{kind}"])
    assert cfg.data.dataset._target_ == "scoresde.data.fashion_mnist" and cfg.model.net.channels == channels
    net = instantiate(cfg.model.net, event_shape=(1, 28, 28))
    assert net.padded_size() == padded
    assert instantiate(cfg.train).steps == cfg.train.steps
