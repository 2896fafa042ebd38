"""Score networks (which know nothing of SDEs) and the parameterisation wrapper that turns them into scores."""

from .embeddings import GaussianFourierEmbedding, LabelEmbedding, SinusoidalEmbedding, TimeMLP
from .mlp import MLP
from .parameterization import ScoreModel
from .summary import ModelSummary, count_parameters, summarize
from .unet import UNet

__all__ = [
    "ModelSummary",
    "summarize",
    "ScoreModel",
    "count_parameters",
    "MLP",
    "UNet",
    "SinusoidalEmbedding",
    "GaussianFourierEmbedding",
    "TimeMLP",
    "LabelEmbedding",
]
