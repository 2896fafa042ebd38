"""Training a score model: the loop, its objectives, EMA, checkpoints and likelihood reports.

``trainer`` holds the loop (:class:`Trainer`) and the callbacks it reports through (:class:`Callback`), ``config``
its settings (:class:`TrainConfig`), ``objectives`` the callable losses it minimises, ``ema`` the weight average,
``checkpoint`` the file format and :func:`load_checkpoint`, ``evaluation`` the likelihood report on the EMA model.
Figures (sample grids, the loss curve) are the CLI's: :mod:`scoresde.cli.snapshots` and :mod:`scoresde.cli.plotting`.
"""

from .checkpoint import Checkpoint, CheckpointError, CheckpointManager, DamagedCheckpointWarning, load_checkpoint
from .config import PRECISIONS, TrainConfig
from .ema import EMA
from .evaluation import LikelihoodReport, evaluate_likelihood
from .objectives import OBJECTIVES, DDPMObjective, DSMObjective, NCSNObjective, drop_labels
from .trainer import Callback, NonFiniteLossError, Trainer, TrainResult, replica_deviation

__all__ = [
    "Trainer",
    "Callback",
    "TrainConfig",
    "TrainResult",
    "NonFiniteLossError",
    "replica_deviation",
    "PRECISIONS",
    "DSMObjective",
    "DDPMObjective",
    "NCSNObjective",
    "OBJECTIVES",
    "drop_labels",
    "EMA",
    "Checkpoint",
    "load_checkpoint",
    "CheckpointManager",
    "CheckpointError",
    "DamagedCheckpointWarning",
    "LikelihoodReport",
    "evaluate_likelihood",
]


def __getattr__(name: str):
    if name == "SampleSnapshot":  # moved with the figures into the CLI; a pointer instead of a bare error
        raise AttributeError("scoresde.training.SampleSnapshot moved to scoresde.cli.snapshots.SampleSnapshot")
    raise AttributeError(f"module 'scoresde.training' has no attribute {name!r}")
