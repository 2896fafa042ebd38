"""Small CNN classifiers that give the domain datasets (digits, MNIST, Fashion-MNIST) a feature space for FID.

There are no pretrained weights on an offline machine, so the project trains its own classifiers; the
penultimate layer (after its ReLU) is the feature space of "FID" on these datasets, and the logits feed the
Inception-Score analogue. Weights and their test accuracy are stored side by side in a cache directory
(:func:`scoresde.metrics.cache.cache_dir`), one pair per dataset: ``classifiers/<dataset>.pt`` and ``.json``.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from .cache import cache_dir


class SmallCNN(nn.Module):
    """conv-conv-pool blocks until the image is at most 7 pixels wide, then two linear layers.

    8x8 digits get one block (8 -> 4), 28x28 images two (28 -> 14 -> 7), 32x32 images three.

    Args:
        event_shape: (C, H, W) of the images.
        num_classes: Number of classes K.
        width: Channels of the first block (doubled in each further block).
        feature_dim: Size of the penultimate layer, the feature space.
        dropout: Dropout before the last layer (training only).
    """

    def __init__(
        self, event_shape: tuple[int, ...], num_classes: int = 10, width: int = 32, feature_dim: int = 128, dropout=0.3
    ):
        super().__init__()
        if len(event_shape) != 3:
            raise ValueError(f"event_shape must be (C, H, W), got {tuple(event_shape)}")
        channels, h, w = event_shape
        blocks, c_in, c_out = [], channels, width
        while True:
            blocks += [nn.Conv2d(c_in, c_out, 3, padding=1), nn.ReLU(), nn.Conv2d(c_out, c_out, 3, padding=1)]
            blocks += [nn.BatchNorm2d(c_out), nn.ReLU(), nn.MaxPool2d(2)]
            h, w = h // 2, w // 2
            c_in, c_out = c_out, 2 * c_out
            if max(h, w) <= 7:
                break
        self.event_shape = tuple(event_shape)
        self.num_classes = num_classes
        self.feature_dim = feature_dim
        self.body = nn.Sequential(*blocks, nn.Flatten(), nn.Linear(c_in * h * w, feature_dim), nn.ReLU())
        self.head = nn.Sequential(nn.Dropout(dropout), nn.Linear(feature_dim, num_classes))

    def features(self, x: Tensor) -> Tensor:
        """Penultimate activations, (B, C, H, W) -> (B, feature_dim)."""
        return self.body(x)

    def forward(self, x: Tensor) -> Tensor:
        """Logits, (B, C, H, W) -> (B, K)."""
        return self.head(self.body(x))


@dataclass(frozen=True)
class ClassifierInfo:
    """What is stored next to the weights: how the classifier was built and how well it does.

    Attributes:
        dataset: Dataset name.
        event_shape: (C, H, W).
        num_classes: K.
        width: SmallCNN width.
        feature_dim: SmallCNN feature size.
        test_accuracy: Accuracy on the dataset's test split.
        epochs: Training epochs.
        train_seconds: Wall time of training.
        fingerprint: Short hash of the weights (keys cached reference statistics).
    """

    dataset: str
    event_shape: tuple[int, ...]
    num_classes: int
    width: int
    feature_dim: int
    test_accuracy: float
    epochs: int
    train_seconds: float
    fingerprint: str


def classifier_paths(dataset: str, root: str | Path | None = None) -> tuple[Path, Path]:
    """(weights .pt, info .json) of the classifier of ``dataset`` under the cache directory."""
    base = cache_dir(root) / "classifiers"
    return base / f"{dataset}.pt", base / f"{dataset}.json"


def _fingerprint(state: dict[str, Tensor]) -> str:
    h = hashlib.sha256()
    for k in sorted(state):
        h.update(k.encode())
        h.update(state[k].detach().cpu().contiguous().numpy().tobytes())
    return h.hexdigest()[:12]


@torch.no_grad()
def accuracy(model: nn.Module, x: Tensor, labels: Tensor, batch_size: int = 1000) -> float:
    """Fraction of ``x`` (N, C, H, W) that ``model`` classifies as ``labels`` (N,)."""
    model.eval()
    device = next(model.parameters()).device
    correct = 0
    for i in range(0, x.shape[0], batch_size):
        pred = model(x[i : i + batch_size].to(device)).argmax(1).cpu()
        correct += int((pred == labels[i : i + batch_size]).sum())
    return correct / x.shape[0]


def train_classifier(
    dataset,
    *,
    epochs: int = 20,
    batch_size: int = 128,
    lr: float = 2e-3,
    width: int = 32,
    feature_dim: int = 128,
    seed: int = 0,
    device: str | torch.device = "cpu",
    save_root: str | Path | None = None,
    save: bool = True,
    log=print,
) -> tuple[SmallCNN, ClassifierInfo]:
    """Train a :class:`SmallCNN` on ``dataset.train`` (Adam, cosine learning rate, small random shifts).

    Args:
        dataset: An ``ArrayDataset`` with image data and labels.
        epochs: Passes over the training set.
        batch_size: Mini-batch size.
        lr: Peak Adam learning rate (cosine decay to 0).
        width: SmallCNN width.
        feature_dim: SmallCNN feature size.
        seed: Seed of initialisation, shuffling and augmentation.
        device: Where to train.
        save_root: Cache root for the weights and info (see :func:`classifier_paths`).
        save: Write the weights and info files.
        log: Called with one progress line per epoch.

    Returns:
        The trained model (eval mode, on CPU) and its :class:`ClassifierInfo`.
    """
    if dataset.train_labels is None or dataset.test_labels is None or dataset.num_classes is None:
        raise ValueError(
            f"dataset {dataset.name!r} has no labels; a classifier needs a labelled dataset (an image folder gets "
            "labels from one sub-folder per class). Without labels FID needs another feature network: "
            "extractor=inception (or raw)"
        )
    if len(dataset.event_shape) != 3:
        raise ValueError(f"dataset {dataset.name!r} is not an image dataset (event shape {dataset.event_shape})")
    # the initial weights and dropout draw from the global RNG, seeded here by `seed` and restored afterwards
    cuda = [torch.device(device)] if torch.device(device).type == "cuda" else []
    with torch.random.fork_rng(devices=cuda):
        torch.manual_seed(seed)
        return _train(dataset, epochs, batch_size, lr, width, feature_dim, seed, device, save_root, save, log)


def _train(dataset, epochs, batch_size, lr, width, feature_dim, seed, device, save_root, save, log):
    gen = torch.Generator().manual_seed(seed)
    model = SmallCNN(dataset.event_shape, dataset.num_classes, width=width, feature_dim=feature_dim).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    steps_per_epoch = math.ceil(dataset.train.shape[0] / batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, lr, total_steps=epochs * steps_per_epoch)
    x_all, y_all = dataset.train.to(device), dataset.train_labels.to(device)
    start = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        perm = torch.randperm(x_all.shape[0], generator=gen).to(device)
        total = 0.0
        for i in range(steps_per_epoch):
            idx = perm[i * batch_size : (i + 1) * batch_size]
            x = random_shift(x_all[idx], gen, lo=dataset.data_range[0])
            loss = nn.functional.cross_entropy(model(x), y_all[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            total += float(loss.detach()) * idx.numel()
        log(f"epoch {epoch + 1}/{epochs}  loss {total / x_all.shape[0]:.4f}")
    seconds = time.perf_counter() - start
    model = model.cpu().eval()
    acc = accuracy(model, dataset.test, dataset.test_labels)
    state = model.state_dict()
    info = ClassifierInfo(
        dataset=dataset.name,
        event_shape=tuple(dataset.event_shape),
        num_classes=dataset.num_classes,
        width=width,
        feature_dim=feature_dim,
        test_accuracy=acc,
        epochs=epochs,
        train_seconds=round(seconds, 1),
        fingerprint=_fingerprint(state),
    )
    if save:
        weights, meta = classifier_paths(dataset.name, save_root)
        weights.parent.mkdir(parents=True, exist_ok=True)
        torch.save(state, weights)
        meta.write_text(json.dumps(asdict(info), indent=2) + "\n")
        log(f"test accuracy {acc:.4f}; wrote {weights} and {meta}")
    return model, info


def random_shift(x: Tensor, gen: torch.Generator, lo: float, max_shift: int = 1) -> Tensor:
    """Translate each image by up to ``max_shift`` pixels (padding with the background value ``lo``)."""
    b, _, h, w = x.shape
    padded = nn.functional.pad(x, (max_shift,) * 4, value=lo)
    dx, dy = (torch.randint(0, 2 * max_shift + 1, (2,), generator=gen)).tolist()
    return padded[:, :, dy : dy + h, dx : dx + w]


def load_classifier(dataset: str, root: str | Path | None = None) -> tuple[SmallCNN, ClassifierInfo]:
    """The trained classifier of ``dataset`` from the cache directory (eval mode, CPU).

    Raises:
        FileNotFoundError: with the command that trains it, when it has not been trained yet.
    """
    weights, meta = classifier_paths(dataset, root)
    if not weights.exists() or not meta.exists():
        raise FileNotFoundError(
            f"no trained classifier for dataset {dataset!r}: expected {weights} and {meta}. Train it with\n"
            f"    python -m scoresde.metrics.train_classifier data={dataset}\n"
            "(set SCORESDE_CACHE or pass cache_dir=... to keep it elsewhere)"
        )
    raw = json.loads(meta.read_text())
    raw["event_shape"] = tuple(raw["event_shape"])
    info = ClassifierInfo(**raw)
    model = SmallCNN(info.event_shape, info.num_classes, width=info.width, feature_dim=info.feature_dim)
    model.load_state_dict(torch.load(weights, map_location="cpu", weights_only=True))
    return model.eval(), info
