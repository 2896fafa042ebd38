"""Training a score model: the loop, its objectives, EMA, checkpoints, sample snapshots and likelihood reports.

``trainer`` holds the loop (:class:`Trainer`), ``config`` its settings (:class:`TrainConfig`), ``objectives`` the
callable losses it minimises, ``ema`` the weight average, ``checkpoint`` the file format and
:func:`load_checkpoint`, ``snapshots`` and ``evaluation`` what the CLI runs on the EMA model while training.
"""

from .checkpoint import Checkpoint, CheckpointError, CheckpointManager, DamagedCheckpointWarning, load_checkpoint
from .config import PRECISIONS, TrainConfig
from .ema import EMA
from .evaluation import LikelihoodReport, evaluate_likelihood
from .objectives import OBJECTIVES, DDPMObjective, DSMObjective, NCSNObjective, drop_labels
from .snapshots import SampleSnapshot
from .trainer import NonFiniteLossError, Trainer, TrainResult, replica_deviation

__all__ = [
    "Trainer",
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
    "SampleSnapshot",
    "LikelihoodReport",
    "evaluate_likelihood",
]
