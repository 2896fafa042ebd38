"""A noise-conditional classifier p_t(y | x_t) for images, trained on data noised by any SDE, for classifier guidance.

Classifier guidance needs grad_x log p_t(y | x_t) at every noise level (Song et al. 2021, app. I.1), so the
classifier is trained on x_t = m(t) x_0 + s(t) z with t ~ U(eps, T), by cross-entropy, as the paper's
time-dependent classifier (and ADM's, Dhariwal & Nichol 2021): the U-Net's encoder with the time embedding in every
residual block, global average pooling and a linear head. Like :class:`~scoresde.models.ScoreModel` it holds its
SDE and feeds the network c_in x_t = x_t / sqrt(m^2 + s^2) and the time input (N - 1) t / T.

Its weights and a JSON record (constructor arguments, the SDE's config, test accuracy by noise level) are written
side by side: ``noisy_classifier.pt`` and ``noisy_classifier.json`` (:func:`save_noisy_classifier`,
:func:`load_noisy_classifier`).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .._instantiate import instantiate
from .._utils import append_dims, batch_time
from .._validation import check_int, check_sde
from ..metrics.classifier import random_shift
from ..models.embeddings import TimeMLP
from ..models.unet import ResBlock, group_norm
from ..sde import SDE

WEIGHTS, RECORD = "noisy_classifier.pt", "noisy_classifier.json"


class NoisyClassifier(nn.Module):
    """``classifier(x, t) -> (B, K)`` logits of the class of x_t, for images (B, C, H, W) and SDE times t in [0, T].

    Args:
        sde: The forward SDE whose noised data it classifies.
        event_shape: (C, H, W).
        num_classes: K.
        channels: Base channel count; level l has ``channels * ch_mult[l]``.
        ch_mult: Channel multiplier per level (a 2x2 average pooling between levels).
        num_res_blocks: Residual blocks per level.
        dropout: Dropout in the residual blocks.
        time_embedding: ``"sinusoidal"`` or ``"fourier"``.
        norm_groups: GroupNorm groups.
        num_levels: The time input is (num_levels - 1) t / T, the score networks' scale.
    """

    def __init__(
        self,
        sde: SDE,
        event_shape: Sequence[int],
        num_classes: int,
        *,
        channels: int = 32,
        ch_mult: Sequence[int] = (1, 2),
        num_res_blocks: int = 1,
        dropout: float = 0.0,
        time_embedding: str = "sinusoidal",
        norm_groups: int = 8,
        num_levels: int = 1000,
    ) -> None:
        super().__init__()
        check_sde(sde)
        if len(event_shape) != 3:
            raise ValueError(f"event_shape must be (C, H, W), got {tuple(event_shape)}")
        check_int("num_classes", num_classes, 2)
        self.sde, self.event_shape, self.num_classes, self.num_levels = sde, tuple(event_shape), num_classes, num_levels
        self.options = dict(channels=channels, ch_mult=list(ch_mult), num_res_blocks=num_res_blocks, dropout=dropout,
                            time_embedding=time_embedding, norm_groups=norm_groups, num_levels=num_levels)  # fmt: skip
        emb_dim = 4 * channels
        self.time = TimeMLP(time_embedding, channels, emb_dim)
        self.inp = nn.Conv2d(self.event_shape[0], channels, 3, padding=1)
        blocks, ch = [], channels
        for lvl, mult in enumerate(ch_mult):
            for _ in range(num_res_blocks):
                blocks.append(ResBlock(ch, channels * mult, emb_dim, dropout, norm_groups, skip_rescale=True))
                ch = channels * mult
            blocks.append(nn.AvgPool2d(2) if lvl < len(ch_mult) - 1 else nn.Identity())
        self.blocks = nn.ModuleList(blocks)
        self.out = nn.Sequential(group_norm(ch, norm_groups), nn.SiLU())
        self.head = nn.Linear(ch, num_classes)

    def forward(self, x: Tensor, t: float | Tensor) -> Tensor:
        """Logits (B, K) of the class of x_t; x of shape (B, C, H, W), t a float or (B,) in [0, T]."""
        t = batch_time(t, x)
        m, s = self.sde.mean_scale(t), self.sde.std(t)
        param = self.head.weight
        h = self.inp((append_dims(torch.rsqrt(m**2 + s**2), x.ndim) * x).to(param.dtype))
        emb = self.time((t * ((self.num_levels - 1) / self.sde.T)).to(param.dtype))
        for block in self.blocks:
            h = block(h, emb) if isinstance(block, ResBlock) else block(h)
        return self.head(self.out(h).mean((-2, -1))).to(x.dtype)


@dataclass
class NoisyClassifierReport:
    """How a noisy classifier was trained and how well it classifies test data at each noise level.

    Attributes:
        dataset: Dataset name.
        steps: Optimiser steps.
        train_seconds: Wall time of training.
        times: The SDE times t of the accuracy table.
        sigmas: The noise-to-signal ratio sigma(t) = s(t) / m(t) at those times.
        accuracy: Test accuracy on x_t at each time (one fixed noise draw per test image).
        nll: Mean test cross-entropy (nats) at each time.
    """

    dataset: str
    steps: int
    train_seconds: float
    times: list[float] = field(default_factory=list)
    sigmas: list[float] = field(default_factory=list)
    accuracy: list[float] = field(default_factory=list)
    nll: list[float] = field(default_factory=list)

    def table(self) -> str:
        """A markdown table: t, sigma(t), accuracy, cross-entropy."""
        lines = ["| t | sigma(t) | test accuracy | cross-entropy (nats) |", "|---|---|---|---|"]
        for row in zip(self.times, self.sigmas, self.accuracy, self.nll, strict=True):
            lines.append("| {:.2f} | {:.3g} | {:.3f} | {:.3f} |".format(*row))
        return "\n".join(lines)


@torch.no_grad()
def accuracy_by_noise_level(
    classifier: NoisyClassifier, x: Tensor, labels: Tensor, times: Sequence[float], *, seed: int = 0
) -> tuple[list[float], list[float]]:
    """Accuracy and mean cross-entropy of ``classifier`` on x_t (one seeded noise draw) at each time in ``times``."""
    classifier.eval()
    device = next(classifier.parameters()).device
    x, labels = x.to(device), labels.to(device)
    gen = torch.Generator(device).manual_seed(seed)
    acc, nll = [], []
    for t in times:
        z = torch.randn(x.shape, generator=gen, device=device)
        x_t = classifier.sde.perturb(x, float(t), z) if t > 0 else x
        logits = torch.cat([classifier(x_t[i : i + 500], float(t)) for i in range(0, x.shape[0], 500)])
        acc.append(float((logits.argmax(1) == labels).double().mean()))
        nll.append(float(F.cross_entropy(logits, labels)))
    return acc, nll


def train_noisy_classifier(
    classifier: NoisyClassifier,
    dataset,
    *,
    steps: int = 2000,
    batch_size: int = 128,
    lr: float = 2e-3,
    eps: float = 1e-5,
    shift: int = 1,
    seed: int = 0,
    eval_times: Sequence[float] = (0.0, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0),
    device: str | torch.device = "cpu",
    log: Callable[[str], Any] = print,
) -> NoisyClassifierReport:
    """Train ``classifier`` by cross-entropy on x_t = m(t) x_0 + s(t) z, t ~ U(eps, T) (Adam, one-cycle schedule,
    random shifts of x_0 by up to ``shift`` pixels), then measure its test accuracy at each of ``eval_times``.

    Args:
        classifier: The :class:`NoisyClassifier` to train (in place).
        dataset: A labelled image ``ArrayDataset``.
        steps: Optimiser steps.
        batch_size: Mini-batch size.
        lr: Peak learning rate.
        eps: Smallest training time.
        shift: Largest random translation of the training images in pixels (0: no augmentation).
        seed: Seeds the batches, times and noise.
        eval_times: SDE times of the accuracy table.
        device: Where to train.
        log: Called with progress lines.
    """
    if dataset.train_labels is None or dataset.test_labels is None:
        raise ValueError(f"dataset {dataset.name!r} has no labels; a classifier needs a labelled dataset")
    sde = classifier.sde
    gen = torch.Generator(device).manual_seed(seed)
    cpu_gen = torch.Generator().manual_seed(seed + 1)
    classifier.to(device).train()
    opt = torch.optim.Adam(classifier.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=steps)
    x_all, y_all = dataset.train.to(device), dataset.train_labels.to(device)
    start, running = time.perf_counter(), 0.0
    for step in range(1, steps + 1):
        idx = torch.randint(0, x_all.shape[0], (batch_size,), generator=gen, device=device)
        x0 = random_shift(x_all[idx], cpu_gen, lo=dataset.data_range[0], max_shift=shift) if shift else x_all[idx]
        t = eps + (sde.T - eps) * torch.rand(batch_size, generator=gen, device=device)
        x_t = sde.perturb(x0, t, torch.randn(x0.shape, generator=gen, device=device))
        loss = F.cross_entropy(classifier(x_t, t), y_all[idx])
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        sched.step()
        running += float(loss.detach())
        if step % max(steps // 10, 1) == 0:
            log(f"step {step}/{steps}  loss {running / max(steps // 10, 1):.4f}")
            running = 0.0
    seconds = time.perf_counter() - start
    acc, nll = accuracy_by_noise_level(classifier, dataset.test, dataset.test_labels, eval_times, seed=seed)
    sigmas = [float(sde.sigma(max(float(t), 1e-12))) if t > 0 else 0.0 for t in eval_times]
    return NoisyClassifierReport(
        dataset.name, steps, round(seconds, 1), [float(t) for t in eval_times], sigmas, acc, nll
    )


def save_noisy_classifier(
    classifier: NoisyClassifier, report: NoisyClassifierReport, directory: str | Path, sde_config: Mapping[str, Any]
) -> Path:
    """Write ``noisy_classifier.pt`` (state dict) and ``noisy_classifier.json`` (how to rebuild it, the accuracy
    table) into ``directory``; ``sde_config`` is the SDE's ``_target_`` block. Returns the weights' path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    torch.save(classifier.state_dict(), directory / WEIGHTS)
    record = {"sde": dict(sde_config), "event_shape": list(classifier.event_shape),
              "num_classes": classifier.num_classes, "options": classifier.options,
              "report": asdict(report)}  # fmt: skip
    (directory / RECORD).write_text(json.dumps(record, indent=2) + "\n")
    return directory / WEIGHTS


def load_noisy_classifier(path: str | Path, *, map_location: str | torch.device = "cpu") -> NoisyClassifier:
    """Rebuild a saved :class:`NoisyClassifier` (eval mode, no gradients) from its directory or its ``.pt`` file."""
    path = Path(path)
    directory = path if path.is_dir() else path.parent
    weights, record_path = directory / WEIGHTS, directory / RECORD
    if not path.exists() or not weights.exists() or not record_path.exists():
        raise FileNotFoundError(
            f"no noisy classifier at {path}: expected {weights} and {record_path}; train one with\n"
            "    python -m scoresde.train_noisy_classifier data=digits sde=vp hydra.run.dir=DIR"
        )
    record = json.loads(record_path.read_text())
    options = dict(record["options"])
    classifier = NoisyClassifier(instantiate(record["sde"]), record["event_shape"], record["num_classes"], **options)
    classifier.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    classifier.record = record
    return classifier.to(map_location).eval().requires_grad_(False)
