"""``python -m scoresde.train_noisy_classifier data=NAME sde=vp``: train the noise-conditional classifier that
classifier guidance uses (``task=class_conditional classifier=RUN_DIR`` of the sampling CLI).

The run directory receives ``noisy_classifier.pt``, ``noisy_classifier.json`` (constructor arguments, the SDE's
config and the test accuracy by noise level) and ``accuracy.md`` (the same table in markdown).
"""

from __future__ import annotations

import logging
from pathlib import Path

import hydra
import torch
from omegaconf import DictConfig

from .._instantiate import instantiate
from ..conditioning.noisy_classifier import NoisyClassifier, save_noisy_classifier, train_noisy_classifier
from ._runtime import CONF_DIR, plain_config, run_command

log = logging.getLogger("scoresde.train_noisy_classifier")


def run(cfg: DictConfig, run_dir: Path, device: torch.device) -> Path:
    """Train, evaluate and save as ``cfg`` says; returns the weights' path."""
    config = plain_config(cfg)
    torch.manual_seed(int(cfg.seed))
    dataset, sde = instantiate(config["data"]["dataset"]), instantiate(config["sde"])
    if dataset.num_classes is None or len(dataset.event_shape) != 3:
        raise ValueError(f"data={dataset.name} is not a labelled image dataset; the noisy classifier needs one")
    classifier = NoisyClassifier(sde, dataset.event_shape, dataset.num_classes, **config["classifier"])
    params = sum(p.numel() for p in classifier.parameters())
    log.info("data: %s, %d train / %d test, %d classes; sde: %r; classifier: %s parameters on %s", dataset.name,
             len(dataset.train), len(dataset.test), dataset.num_classes, sde, f"{params:,}", device)  # fmt: skip
    report = train_noisy_classifier(classifier, dataset, **config["train"], seed=int(cfg.seed), device=device,
                                    log=log.info)  # fmt: skip
    path = save_noisy_classifier(classifier.cpu(), report, run_dir, config["sde"])
    (run_dir / "accuracy.md").write_text(report.table() + "\n")
    log.info("trained %d steps in %.1f s; test accuracy by noise level:\n%s", report.steps, report.train_seconds,
             report.table())  # fmt: skip
    log.info("wrote %s and %s", path, path.with_suffix(".json"))
    return path


@hydra.main(version_base="1.3", config_path=CONF_DIR, config_name="train_noisy_classifier")
def main(cfg: DictConfig) -> None:
    """Entry point of ``python -m scoresde.train_noisy_classifier``."""
    run_command(cfg, run)


if __name__ == "__main__":
    main()
