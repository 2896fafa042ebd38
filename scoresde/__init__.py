"""scoresde: score-based generative modelling through SDEs (Song et al., ICLR 2021) in PyTorch.

The public API is re-exported here; see the README for a tour.
"""

import warnings

from . import conditioning, data, metrics, models, oracle
from .checkpoint import Checkpoint, load_checkpoint
from .conditioning import classifier_free_guidance, classifier_guidance, colorize, inpaint
from .likelihood import LikelihoodResult, bits_per_dim, log_likelihood
from .losses import ddpm_loss, dsm_loss, dsm_loss_per_sample, ncsn_loss
from .metrics import frechet_distance
from .models import ReferenceCheckpoint, ScoreModel, load_reference_checkpoint
from .quantization import BitsPerDim, Quantization
from .sampling import sample
from .sde import SDE, VESDE, VPSDE, Coefficients, Discretization, Marginal, ReverseSDE, SubVPSDE
from .solvers import SOLVERS, SampleInfo

# `python -m scoresde.likelihood` runs a module this package has already imported for its public API; runpy warns
# about the second copy, which is harmless there (its __main__ block only calls scoresde.cli.likelihood.main).
warnings.filterwarnings("ignore", message="'scoresde.likelihood' found in sys.modules", category=RuntimeWarning)

__version__ = "0.1.0"

__all__ = [
    "sample",
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
]
