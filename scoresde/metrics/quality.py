"""Sample quality against a dataset, with the floor of every metric beside it.

A :class:`SampleEvaluator` holds the reference features of a split (``train`` by default, cached) and scores
samples with FID, KID and, when the extractor has a classifier head, the Inception-Score analogue; for raw
(low-dimensional) features also MMD, sliced W2 and, for oracle datasets, the exact NLL. Its :meth:`floor` scores
the same number of held-out real points (the ``test`` split) the same way: no sampler can be expected to beat it,
and the finite-sample bias of FID at that N is part of it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
from torch import Tensor

from .features import FeatureExtractor, RawFeatures
from .frechet import frechet_distance_from_stats, gaussian_stats
from .inception_score import classifier_score
from .kid import kernel_inception_distance
from .lowdim import mmd_rbf, oracle_nll, sliced_wasserstein
from .reference import reference_set


@dataclass(frozen=True)
class QualityScores:
    """Scores of one sample set (None where the metric does not apply).

    Attributes:
        n: Number of samples scored.
        fid: Fréchet distance in the extractor's feature space.
        kid: KID (mean over subsets); kid_std its spread over subsets.
        score: Inception-Score analogue (classifier extractors); score_std its spread over splits.
        mmd: RBF MMD^2 (raw features only).
        sliced_w2: Sliced squared 2-Wasserstein distance (raw features only).
        nll: Mean exact NLL under the dataset's oracle (oracle datasets only).
        fid_matched: FID at the floor's sample size (mean over random subsets), when N is larger than it.
    """

    n: int
    fid: float
    kid: float
    kid_std: float
    score: float | None = None
    score_std: float | None = None
    mmd: float | None = None
    sliced_w2: float | None = None
    nll: float | None = None
    fid_matched: float | None = None

    def as_dict(self, prefix: str = "") -> dict[str, float | int | None]:
        """The scores as a flat dict, keys prefixed (e.g. ``"floor_"``)."""
        return {f"{prefix}{k}": v for k, v in asdict(self).items()}


class SampleEvaluator:
    """Scores sample sets of one dataset against its reference split.

    Args:
        dataset: An ``ArrayDataset``.
        extractor: Feature extractor (e.g. from :func:`scoresde.metrics.features.extractor_for`).
        reference_split: Split the samples are compared with (``"train"``).
        floor_split: Held-out split that gives the floor (``"test"``).
        cache_root: Cache root of the reference statistics.
        cache: Read and write the reference statistics cache (False: always recompute, write nothing).
        kid_subsets: Number of KID subsets.
        kid_subset_size: KID subset size (capped by the set sizes).
        matched_repeats: Random subsets averaged by :meth:`matched_fid`.
        seed: Seed of the KID subsets, the MMD / sliced-W2 randomness and the floor's subsample.
    """

    def __init__(
        self,
        dataset,
        extractor: FeatureExtractor,
        *,
        reference_split: str = "train",
        floor_split: str = "test",
        cache_root=None,
        cache: bool = True,
        kid_subsets: int = 100,
        kid_subset_size: int = 1000,
        matched_repeats: int = 10,
        seed: int = 0,
    ):
        self.dataset, self.extractor = dataset, extractor
        self.reference = reference_set(dataset, reference_split, extractor, cache_root=cache_root, cache=cache)
        self.floor_split = floor_split
        dataset.split(floor_split)  # validates the name
        self.kid_subsets, self.kid_subset_size, self.seed = kid_subsets, kid_subset_size, seed
        self.matched_repeats = matched_repeats
        self._floors: dict[int, QualityScores] = {}

    def evaluate(self, samples: Tensor, *, matched_n: int | None = None) -> QualityScores:
        """Scores of ``samples`` (N, *event_shape) in the model range.

        Args:
            samples: The samples.
            matched_n: When given and smaller than N, also report ``fid_matched``, the FID at sample size
                ``matched_n`` (see :meth:`matched_fid`), comparable with ``floor(matched_n)``.
        """
        if tuple(samples.shape[1:]) != tuple(self.dataset.event_shape):
            raise ValueError(
                f"samples must have shape (N, {', '.join(map(str, self.dataset.event_shape))}), "
                f"got {tuple(samples.shape)}"
            )
        out = self.extractor.extract(samples)
        feats = out.features.numpy()
        scores = self._score(feats, None if out.logits is None else out.logits.numpy(), samples)
        if matched_n is not None and matched_n < feats.shape[0]:
            scores = replace(scores, fid_matched=self.matched_fid(feats, matched_n))
        return scores

    def floor(self, n: int | None = None) -> QualityScores:
        """Scores of n held-out real points against the reference (a seeded random subset; all if n is None).

        This is what a perfect sampler gets at sample size n. FID is biased upwards by about b / n at sample size
        n (Chong & Forsyth, 2020), so compare it with the samples' FID at the same n: when N samples outnumber
        the held-out split, :meth:`evaluate` with ``matched_n`` gives that.
        """
        held_out = self.dataset.split(self.floor_split)
        n = held_out.shape[0] if n is None else min(int(n), held_out.shape[0])
        if n not in self._floors:
            idx = torch.randperm(held_out.shape[0], generator=torch.Generator().manual_seed(self.seed))[:n]
            self._floors[n] = self.evaluate(held_out[idx.sort().values])
        return self._floors[n]

    def matched_fid(self, feats: np.ndarray, n: int) -> float:
        """Mean FID of ``matched_repeats`` random n-subsets of the (N, F) features ``feats``, n < N.

        A uniformly random n-subset of N i.i.d. samples is an i.i.d. sample of size n, so this is an unbiased
        estimate of the FID at sample size n, with less variance than a single subset.
        """
        rng = np.random.default_rng(self.seed)
        fids = [
            frechet_distance_from_stats(gaussian_stats(feats[rng.choice(feats.shape[0], n, replace=False)]),
                                        self.reference.stats)
            for _ in range(self.matched_repeats)
        ]  # fmt: skip
        return float(np.mean(fids))

    def _score(self, feats: np.ndarray, logits: np.ndarray | None, data: Tensor) -> QualityScores:
        ref = self.reference.features
        kid = kernel_inception_distance(
            feats, ref, num_subsets=self.kid_subsets, subset_size=self.kid_subset_size, seed=self.seed
        )
        extra: dict[str, float | None] = {}
        if logits is not None:
            res = classifier_score(logits, splits=min(10, logits.shape[0]))
            extra.update(score=res.mean, score_std=res.std)
        if isinstance(self.extractor, RawFeatures):
            extra.update(mmd=mmd_rbf(feats, ref, seed=self.seed), sliced_w2=sliced_wasserstein(feats, ref))
            oracle = getattr(self.dataset, "oracle", None)
            if oracle is not None:
                extra.update(nll=oracle_nll(oracle, data))
        fid = frechet_distance_from_stats(gaussian_stats(feats), self.reference.stats)
        return QualityScores(n=feats.shape[0], fid=fid, kid=kid.mean, kid_std=kid.std, **extra)
