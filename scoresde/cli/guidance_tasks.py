"""Class-conditional sampling tasks of the sampling CLI: classifier guidance and classifier-free guidance.

    python -m scoresde.sample ckpt=RUN task=class_conditional label=3 classifier=CLF_RUN scale=1.0 n=4
    python -m scoresde.sample ckpt=CFG_RUN task=cfg label=3 scale=1.0 n=4

Each writes ``<task>.png``: one row per condition, the first column a test image of the requested class (what the
label means), then ``task.samples`` samples; and ``<task>.npz`` (``samples`` (R, S, *event_shape), ``labels`` (R,),
``nfe``). ``label=null`` (the default) gives one row per class.
"""

from __future__ import annotations

import abc
import logging
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .._validation import check_int, is_int
from ..conditioning.guidance import classifier_free_guidance, classifier_guidance
from ..conditioning.noisy_classifier import load_noisy_classifier
from ..sampling import sample
from ..sde import ScoreFn
from ..solvers.base import Solver
from ..training.checkpoint import Checkpoint
from .tasks import Task, save_condition_grid

log = logging.getLogger("scoresde.sample")


class _LabelTask(Task):
    """Rows of labels, a column of example images and ``samples`` columns drawn with a guided score."""

    name = "label"

    def __init__(self, label: int | None = None, scale: float = 1.0, samples: int = 8, steps: int = 500) -> None:
        if label is not None and (not is_int(label) or label < 0):
            raise ValueError(f"label must be a class index >= 0 or null (one row per class), got {label!r}")
        self.label, self.scale, self.steps = label, float(scale), steps
        self.samples = check_int("task.samples", samples)

    @abc.abstractmethod
    def guided_score(self, ckpt: Checkpoint, y: Tensor, device: torch.device) -> ScoreFn:
        """The score that samples class y[i] for sample i, y of shape (B,)."""

    @abc.abstractmethod
    def num_classes(self, ckpt: Checkpoint) -> int:
        """K, the number of classes the guidance knows."""

    def run(
        self, *, ckpt: Checkpoint, solver: Solver, n: int, steps: int | None, seed: int, device: torch.device,
        run_dir: Path,
    ) -> Path:  # fmt: skip
        num_classes = self.num_classes(ckpt)
        if self.label is not None and self.label >= num_classes:
            raise ValueError(f"label={self.label} but the model knows {num_classes} classes (0..{num_classes - 1})")
        rows = torch.arange(min(n, num_classes)) if self.label is None else torch.full((n,), self.label)
        y = rows.repeat_interleave(self.samples).to(device)
        gen = torch.Generator(device).manual_seed(seed)
        x, info = sample(ckpt.sde, self.guided_score(ckpt, y, device), (y.numel(), *ckpt.event_shape), solver=solver,
                         steps=steps if steps is not None else self.steps, generator=gen, device=device)  # fmt: skip
        x = x.reshape(len(rows), self.samples, *ckpt.event_shape).cpu()
        dataset = ckpt.load_dataset()
        columns = [_examples(dataset, rows), *x.unbind(1)]
        run_dir.mkdir(parents=True, exist_ok=True)
        title = f"{self.name} w={self.scale:g}: class example | samples"
        path = save_condition_grid(columns, run_dir / f"{self.name}.png", data_range=dataset.data_range, title=title)
        np.savez_compressed(run_dir / f"{self.name}.npz", samples=x.numpy(), labels=rows.numpy(), nfe=info.nfe)
        log.info("%s: %d rows x %d samples, scale %g, %d score evaluations, %.1f s: %s", self.name, len(rows),
                 self.samples, self.scale, info.nfe, info.wall_time, path)  # fmt: skip
        return path


def _examples(dataset, rows: Tensor) -> Tensor:
    """For each requested class, a test image of that class (the first one); grey if the data have no labels."""
    labels = dataset.test_labels
    if labels is None:
        return torch.zeros(len(rows), *dataset.event_shape)
    picks = [int((labels == int(k)).nonzero()[0]) if bool((labels == int(k)).any()) else 0 for k in rows]
    return dataset.test[picks]


class ClassConditionalTask(_LabelTask):
    """Classifier guidance of an unconditional model with a noisy classifier (Song et al. 2021, app. I.1).

    Args:
        classifier: A directory (or its ``noisy_classifier.pt``) written by ``python -m
            scoresde.train_noisy_classifier``, trained under the checkpoint's SDE.
        label: The class of every row, or None for one row per class.
        scale: Guidance scale w (1: the classifier's posterior as it is; larger: sharper classes).
        samples: Samples per row.
        steps: Solver steps when the command line gives none.
    """

    name = "class_conditional"

    def __init__(self, classifier: str, label: int | None = None, scale: float = 1.0, samples: int = 8,
                 steps: int = 500) -> None:  # fmt: skip
        super().__init__(label, scale, samples, steps)
        if not classifier:
            raise ValueError(
                "task=class_conditional needs classifier=PATH (a python -m scoresde.train_noisy_classifier run)"
            )
        self.classifier_path = str(classifier)
        self._classifier = None

    def _load(self, ckpt: Checkpoint):
        if self._classifier is None:
            clf = load_noisy_classifier(self.classifier_path)
            if clf.sde != ckpt.sde:
                raise ValueError(f"the classifier at {self.classifier_path} was trained under {clf.sde!r}, but the "
                                 f"checkpoint's SDE is {ckpt.sde!r}: train it with the same sde=")  # fmt: skip
            if tuple(clf.event_shape) != tuple(ckpt.event_shape):
                raise ValueError(f"the classifier takes {clf.event_shape} images, the model {ckpt.event_shape}")
            self._classifier = clf
        return self._classifier

    def num_classes(self, ckpt: Checkpoint) -> int:
        return self._load(ckpt).num_classes

    def guided_score(self, ckpt: Checkpoint, y: Tensor, device: torch.device) -> ScoreFn:
        return classifier_guidance(ckpt.score_fn, self._load(ckpt).to(device), y, self.scale)


class CFGTask(_LabelTask):
    """Classifier-free guidance of a label-conditional model (Ho & Salimans 2021), trained with
    ``model.net.num_classes=K train.label_dropout=0.1``.

    Args:
        label: The class of every row, or None for one row per class.
        scale: Guidance weight w (0: the conditional model as it is).
        samples: Samples per row.
        steps: Solver steps when the command line gives none.
    """

    name = "cfg"

    def num_classes(self, ckpt: Checkpoint) -> int:
        k = getattr(ckpt.model, "num_classes", None)
        if k is None:
            raise ValueError(
                f"the checkpoint {ckpt.path} holds an unconditional model; task=cfg needs one trained with labels "
                "(python -m scoresde.train model.net.num_classes=K train.label_dropout=0.1), or use "
                "task=class_conditional with a noisy classifier"
            )
        return k

    def guided_score(self, ckpt: Checkpoint, y: Tensor, device: torch.device) -> ScoreFn:
        return classifier_free_guidance(ckpt.score_fn, y, self.scale)
