"""Feature extractors behind one interface: ``extractor.extract(x) -> Features`` for x in the model range.

* :class:`ClassifierFeatures`: the penultimate layer of the project's own :class:`SmallCNN` for a dataset
  (trained by ``python -m scoresde.metrics.train_classifier data=NAME``); works offline.
* :class:`InceptionFeatures`: the standard FID InceptionV3 (2048-d pool features, TF-compatible port) through the
  optional ``torch-fidelity`` package, from a weights file on disk only; nothing is downloaded.
* :class:`RawFeatures`: the data themselves, flattened (low-dimensional data).

Each extractor has a ``key`` that names it in cached reference statistics (it changes when the weights do).
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from .._validation import check_int
from .cache import cache_dir
from .classifier import ClassifierInfo, load_classifier

INCEPTION_WEIGHTS_FILE = "weights-inception-2015-12-05-6726825d.pth"
INCEPTION_ENV = "SCORESDE_INCEPTION_WEIGHTS"


@dataclass(frozen=True)
class Features:
    """Extracted features.

    Attributes:
        features: (N, F) float32 feature vectors (for FID / KID).
        logits: (N, K) class logits (for the Inception-Score analogue), or None.
    """

    features: Tensor
    logits: Tensor | None = None


class FeatureExtractor(ABC):
    """Maps a batch of data in the model range, shape (N, *event_shape), to :class:`Features`."""

    name: str = "base"

    def __init__(self, batch_size: int = 500):
        check_int("batch_size", batch_size)
        self.batch_size = batch_size

    @classmethod
    @abstractmethod
    def from_dataset(cls, dataset, *, cache_root=None, inception_weights=None) -> FeatureExtractor:
        """The extractor of this kind for an ``ArrayDataset`` (the arguments it does not need are ignored)."""

    @property
    @abstractmethod
    def key(self) -> str:
        """Identifier of the feature space in cache file names (letters, digits, '-' and '.')."""

    @abstractmethod
    def _extract(self, x: Tensor) -> Features:
        """Features of one batch."""

    @torch.no_grad()
    def extract(self, x: Tensor) -> Features:
        """Features of ``x`` (N, *event_shape), computed in batches of ``batch_size``."""
        parts = [self._extract(x[i : i + self.batch_size]) for i in range(0, x.shape[0], self.batch_size)]
        feats = torch.cat([p.features for p in parts]).float()
        logits = None if parts[0].logits is None else torch.cat([p.logits for p in parts]).float()
        return Features(feats, logits)


class RawFeatures(FeatureExtractor):
    """The data as features (flattened): FID becomes the Fréchet distance of the coordinates."""

    name = "raw"

    @classmethod
    def from_dataset(cls, dataset, *, cache_root=None, inception_weights=None) -> RawFeatures:
        return cls()

    @property
    def key(self) -> str:
        return "raw"

    def _extract(self, x: Tensor) -> Features:
        return Features(x.reshape(x.shape[0], -1).float())


class ClassifierFeatures(FeatureExtractor):
    """Penultimate activations and logits of a trained :class:`scoresde.metrics.classifier.SmallCNN`.

    Args:
        model: The classifier (put in eval mode here).
        info: Its :class:`ClassifierInfo` (dataset, accuracy, weight fingerprint).
        batch_size: Images per forward pass.
    """

    name = "classifier"

    def __init__(self, model: nn.Module, info: ClassifierInfo, batch_size: int = 500):
        super().__init__(batch_size)
        self.model = model.eval()
        self.info = info

    @classmethod
    def from_dataset(cls, dataset, *, cache_root=None, inception_weights=None) -> ClassifierFeatures:
        """The cached classifier of ``dataset``; FileNotFoundError (naming the training command) if missing."""
        return cls(*load_classifier(dataset.name, cache_root))

    @property
    def key(self) -> str:
        return f"classifier-{self.info.fingerprint}"

    def _extract(self, x: Tensor) -> Features:
        x = x.to(next(self.model.parameters()).device, torch.float32)
        h = self.model.features(x)
        return Features(h.cpu(), self.model.head(h).cpu())


def inception_weights_path(path: str | Path | None = None, cache_root: str | Path | None = None) -> Path:
    """Where the InceptionV3 weights are looked for: ``path``, else $SCORESDE_INCEPTION_WEIGHTS, else the cache."""
    if path is not None:
        return Path(path).expanduser()
    env = os.environ.get(INCEPTION_ENV)
    return Path(env).expanduser() if env else cache_dir(cache_root) / INCEPTION_WEIGHTS_FILE


class InceptionFeatures(FeatureExtractor):
    """The standard FID InceptionV3 (pool3, 2048-d) via ``torch-fidelity``, from local weights only.

    Images in ``data_range`` are quantised to 8 bits, grey images repeated to 3 channels, and resized to
    299 x 299 inside the network exactly as the TF reference implementation does.

    Args:
        weights: Path of ``weights-inception-2015-12-05-6726825d.pth``; default: $SCORESDE_INCEPTION_WEIGHTS,
            else ``<cache>/weights-inception-2015-12-05-6726825d.pth``.
        data_range: (lo, hi) of the model range.
        device: Where the network runs.
        batch_size: Images per forward pass.
        cache_root: Cache root for the default weights location.

    Raises:
        FileNotFoundError: when the weights file is absent (says which file and where to put it).
        ImportError: when ``torch-fidelity`` is not installed (``pip install 'scoresde[inception]'``).
    """

    name = "inception"

    def __init__(self, weights=None, data_range=(-1.0, 1.0), device="cpu", batch_size=50, cache_root=None):
        super().__init__(batch_size)
        path = inception_weights_path(weights, cache_root)
        if not path.is_file():
            raise FileNotFoundError(
                f"the FID InceptionV3 weights are not on this machine: expected the file {INCEPTION_WEIGHTS_FILE} "
                f"at {path}. Nothing is downloaded at run time: copy that file (torch-fidelity's converted TF "
                "Inception weights, released with torch-fidelity v0.2.0) there, or point the environment variable "
                f"{INCEPTION_ENV} (or the `weights` argument) at it. Without it, use the domain classifiers "
                "(extractor=classifier)."
            )
        try:
            from torch_fidelity.feature_extractor_inceptionv3 import FeatureExtractorInceptionV3
        except Exception as err:  # not installed, or a torchvision that does not match the installed torch
            raise ImportError(
                "the inception extractor needs the optional package torch-fidelity and a working torchvision built "
                "for the installed torch (install that torchvision first, then: pip install 'scoresde[inception]'); "
                f"importing it failed with {type(err).__name__}: {err}"
            ) from err
        self.net = FeatureExtractorInceptionV3(
            "inception-v3-compat", ["2048", "logits_unbiased"], feature_extractor_weights_path=str(path)
        ).to(device)
        self.path, self.data_range, self.device = path, tuple(data_range), device

    @classmethod
    def from_dataset(cls, dataset, *, cache_root=None, inception_weights=None) -> InceptionFeatures:
        return cls(inception_weights, data_range=dataset.data_range, cache_root=cache_root)

    @property
    def key(self) -> str:
        return "inception-v3-compat"

    def _extract(self, x: Tensor) -> Features:
        lo, hi = self.data_range
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"the inception extractor needs images (N, 1 or 3, H, W), got shape {tuple(x.shape)}")
        img = ((x.float() - lo) / (hi - lo) * 255).round().clamp(0, 255).to(torch.uint8)
        img = img.expand(-1, 3, -1, -1) if img.shape[1] == 1 else img
        feats, logits = self.net(img.to(self.device))
        return Features(feats.cpu(), logits.cpu())


EXTRACTORS: dict[str, type[FeatureExtractor]] = {
    "classifier": ClassifierFeatures,
    "inception": InceptionFeatures,
    "raw": RawFeatures,
}


def extractor_for(dataset, name: str = "auto", *, cache_root=None, inception_weights=None) -> FeatureExtractor:
    """The feature extractor ``name`` for an ``ArrayDataset``.

    Args:
        dataset: The dataset (its name picks the classifier, its data_range the inception quantisation).
        name: ``"classifier"``, ``"inception"``, ``"raw"``, or ``"auto"`` (raw for non-image data,
            the domain classifier for images).
        cache_root: Cache root for classifiers and weights.
        inception_weights: Path of the InceptionV3 weights (inception only).
    """
    if name == "auto":
        name = "classifier" if len(dataset.event_shape) == 3 else "raw"
    if name not in EXTRACTORS:
        raise ValueError(f"extractor must be one of {sorted(EXTRACTORS) + ['auto']}, got {name!r}")
    return EXTRACTORS[name].from_dataset(dataset, cache_root=cache_root, inception_weights=inception_weights)
