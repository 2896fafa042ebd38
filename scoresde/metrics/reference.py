"""Reference features and statistics of a dataset split, cached to ``.npz`` keyed by dataset, split and extractor.

The file is ``<cache>/stats/<dataset>-<split>-n<N>-<data hash>-<extractor key>.npz`` with keys ``mu``, ``sigma``,
``n`` (the FID statistics) and ``features`` (for KID). The data hash makes a different split of a dataset of the
same name a different file; the extractor key changes when a classifier is retrained.
"""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .cache import cache_dir
from .features import FeatureExtractor
from .frechet import GaussianStats, gaussian_stats


@dataclass(frozen=True)
class ReferenceSet:
    """Features of a reference split and their Gaussian statistics.

    Attributes:
        features: (N, F) float32 features.
        stats: Their mean and covariance.
        logits: (N, K) logits when the extractor has a classifier head (not cached), else None.
        path: The cache file, or None when not cached.
    """

    features: np.ndarray
    stats: GaussianStats
    logits: np.ndarray | None = None
    path: Path | None = None


def _data_hash(x) -> str:
    return hashlib.sha256(x.detach().cpu().contiguous().numpy().tobytes()).hexdigest()[:10]


def reference_path(dataset, split: str, extractor: FeatureExtractor, cache_root=None) -> Path:
    """The cache file of (dataset, split, extractor)."""
    x = dataset.split(split)
    name = f"{dataset.name}-{split}-n{x.shape[0]}-{_data_hash(x)}-{extractor.key}.npz"
    return cache_dir(cache_root) / "stats" / name


def reference_set(dataset, split: str, extractor: FeatureExtractor, *, cache_root=None, cache: bool = True):
    """Features and statistics of ``dataset.split(split)``, read from the cache or computed and written there.

    Args:
        dataset: An ``ArrayDataset``.
        split: ``"train"`` or ``"test"``.
        extractor: The feature extractor.
        cache_root: Cache root (see :func:`scoresde.metrics.cache.cache_dir`).
        cache: Read and write the cache file; False always recomputes and writes nothing.

    Returns:
        :class:`ReferenceSet`.
    """
    path = reference_path(dataset, split, extractor, cache_root)
    if cache and path.is_file():
        with np.load(path) as f:
            stats = GaussianStats(mu=f["mu"], sigma=f["sigma"], n=int(f["n"]))
            return ReferenceSet(features=f["features"], stats=stats, path=path)
    out = extractor.extract(dataset.split(split))
    feats = out.features.numpy().astype(np.float32)
    stats = gaussian_stats(feats)
    logits = None if out.logits is None else out.logits.numpy()
    if not cache:
        return ReferenceSet(features=feats, stats=stats, logits=logits)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(f".{os.getpid()}.tmp.npz")
    np.savez(tmp, mu=stats.mu, sigma=stats.sigma, n=stats.n, features=feats)
    tmp.replace(path)  # atomic: parallel sweep points never read a half-written file
    return ReferenceSet(features=feats, stats=stats, logits=logits, path=path)
