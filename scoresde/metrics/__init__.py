"""Sample-quality metrics: Fréchet distance (FID), KID, the Inception-Score analogue, and data-space metrics.

Feature extractors (InceptionV3 when its weights are on disk, or the project's own domain classifiers) live in
:mod:`scoresde.metrics.features`; reference statistics are cached by :mod:`scoresde.metrics.reference`.
"""

from .features import ClassifierFeatures, FeatureExtractor, Features, InceptionFeatures, RawFeatures, extractor_for
from .frechet import GaussianStats, frechet_distance, frechet_distance_from_stats, gaussian_stats
from .inception_score import ClassifierScore, classifier_score
from .kid import KIDResult, PolynomialKernel, kernel_inception_distance, mmd2_unbiased
from .lowdim import LowDimMetrics, coordinate_frechet, lowdim_metrics, mmd_rbf, oracle_nll, sliced_wasserstein
from .quality import QualityScores, SampleEvaluator
from .reference import ReferenceSet, reference_set

__all__ = [
    "GaussianStats",
    "gaussian_stats",
    "frechet_distance",
    "frechet_distance_from_stats",
    "KIDResult",
    "PolynomialKernel",
    "kernel_inception_distance",
    "mmd2_unbiased",
    "ClassifierScore",
    "classifier_score",
    "LowDimMetrics",
    "lowdim_metrics",
    "coordinate_frechet",
    "mmd_rbf",
    "sliced_wasserstein",
    "oracle_nll",
    "FeatureExtractor",
    "Features",
    "ClassifierFeatures",
    "InceptionFeatures",
    "RawFeatures",
    "extractor_for",
    "ReferenceSet",
    "reference_set",
    "SampleEvaluator",
    "QualityScores",
]
