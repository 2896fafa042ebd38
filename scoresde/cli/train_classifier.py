"""``python -m scoresde.metrics.train_classifier data=NAME``: train the domain classifier that FID uses on NAME.

The weights and their test accuracy go side by side into the metrics cache (``$SCORESDE_CACHE`` or
``~/.cache/scoresde``; ``cache_dir=...`` overrides): ``classifiers/NAME.pt`` and ``classifiers/NAME.json``.
"""

from __future__ import annotations

import logging

import hydra
import torch
from hydra.utils import instantiate
from omegaconf import DictConfig, OmegaConf

from ..metrics.classifier import train_classifier
from ._runtime import CONF_DIR

log = logging.getLogger("scoresde.train_classifier")


@hydra.main(version_base=None, config_path=CONF_DIR, config_name="train_classifier")
def main(cfg: DictConfig) -> float:
    """Train, write the weights and accuracy, return the test accuracy."""
    torch.set_num_threads(int(cfg.threads))
    device = cfg.device if cfg.device != "auto" else ("cuda" if torch.cuda.is_available() else "cpu")
    dataset = instantiate(cfg.data.dataset)
    log.info("data: %s, %d train / %d test, event shape %s", dataset.name, len(dataset.train), len(dataset.test),
             dataset.event_shape)  # fmt: skip
    _, info = train_classifier(
        dataset, **OmegaConf.to_container(cfg.classifier, resolve=True), device=device, save_root=cfg.cache_dir,
        log=log.info,
    )  # fmt: skip
    log.info("%s classifier: test accuracy %.4f (%d epochs, %.1f s on %s)", info.dataset, info.test_accuracy,
             info.epochs, info.train_seconds, device)  # fmt: skip
    return info.test_accuracy


if __name__ == "__main__":
    main()
