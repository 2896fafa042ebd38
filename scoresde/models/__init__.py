"""Score networks (which know nothing of SDEs) and the parameterisation wrapper that turns them into scores."""

from .embeddings import GaussianFourierEmbedding, LabelEmbedding, SinusoidalEmbedding, TimeMLP
from .mlp import MLP
from .ncsnpp import DDPMpp, NCSNpp
from .parameterization import ScoreModel
from .reference_checkpoint import REFERENCE_CONFIGS, ReferenceCheckpoint, load_reference_checkpoint
from .summary import ModelSummary, count_parameters, summarize
from .unet import UNet

__all__ = [
    "ModelSummary",
    "summarize",
    "ScoreModel",
    "count_parameters",
    "MLP",
    "UNet",
    "NCSNpp",
    "DDPMpp",
    "load_reference_checkpoint",
    "ReferenceCheckpoint",
    "REFERENCE_CONFIGS",
    "SinusoidalEmbedding",
    "GaussianFourierEmbedding",
    "TimeMLP",
    "LabelEmbedding",
]
