"""scoresde: score-based generative modelling through SDEs (Song et al., ICLR 2021) in PyTorch.

The public API is re-exported here; see the README and the documentation site for a tour. Importing the package
changes no global state: no matplotlib backend, RNG, thread count or warnings filter (tests/test_layers.py).
"""

from . import (
    _import_guard,  # first: it undoes, below, the warning filters the dependencies set on import
    conditioning,
    consistency,
    data,
    metrics,
    models,
    oracle,
)
from .conditioning import classifier_free_guidance, classifier_guidance, colorize, inpaint
from .consistency import ConsistencyModel
from .editing import decode, encode, img2img, interpolate
from .likelihood import BitsPerDim, LikelihoodResult, Quantization, bits_per_dim, log_likelihood
from .losses import ddpm_loss, dsm_loss, dsm_loss_per_sample, ncsn_loss
from .metrics import frechet_distance
from .models import ReferenceCheckpoint, ScoreModel, load_reference_checkpoint
from .sampling import sample
from .sde import SDE, VESDE, VPSDE, Coefficients, Discretization, Marginal, ReverseSDE, SubVPSDE
from .solvers import SOLVERS, SampleInfo, Schedule, load_schedule, optimize_schedule, save_schedule
from .training import Checkpoint, load_checkpoint

_import_guard.restore()

__version__ = "0.1.0"

__all__ = [
    "sample",
    "optimize_schedule",
    "Schedule",
    "save_schedule",
    "load_schedule",
    "img2img",
    "encode",
    "decode",
    "interpolate",
    "inpaint",
    "colorize",
    "conditioning",
    "SampleInfo",
    "SOLVERS",
    "SDE",
    "VPSDE",
    "SubVPSDE",
    "VESDE",
    "ReverseSDE",
    "Marginal",
    "Coefficients",
    "Discretization",
    "dsm_loss",
    "dsm_loss_per_sample",
    "ddpm_loss",
    "ncsn_loss",
    "oracle",
    "metrics",
    "frechet_distance",
    "ScoreModel",
    "load_reference_checkpoint",
    "ReferenceCheckpoint",
    "models",
    "data",
    "log_likelihood",
    "bits_per_dim",
    "LikelihoodResult",
    "BitsPerDim",
    "Quantization",
    "load_checkpoint",
    "Checkpoint",
    "classifier_guidance",
    "classifier_free_guidance",
    "consistency",
    "ConsistencyModel",
]
