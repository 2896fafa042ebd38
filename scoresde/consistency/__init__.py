"""Consistency models (Song, Dhariwal, Chen & Sutskever 2023) for every linear SDE of the library.

* :class:`ConsistencyModel`: f(x, t) = c_skip x + c_out F with f(x, eps) = x exactly (parameterization.py).
* :class:`ConsistencySampler`: multistep consistency sampling, Algorithm 1 (``scoresde.sample(...,
  solver="consistency")``).
* Objectives for :class:`scoresde.training.Trainer`: consistency distillation from a teacher score with any
  deterministic library solver (:class:`ConsistencyDistillation`), improved consistency training without a teacher
  (:class:`ConsistencyTraining`, iCT) and easy consistency tuning from a diffusion model (:class:`ConsistencyTuning`,
  ECT).
"""

from .distances import DISTANCES, PseudoHuber, SquaredL2
from .distillation import ConsistencyDistillation
from .objectives import ConsistencyTraining, ConsistencyTuning, ict_levels
from .parameterization import OUTPUTS, ConsistencyModel, check_model_kind
from .sampler import ConsistencySampler

__all__ = [
    "OUTPUTS",
    "DISTANCES",
    "ConsistencyModel",
    "ConsistencySampler",
    "ConsistencyDistillation",
    "ConsistencyTraining",
    "ConsistencyTuning",
    "PseudoHuber",
    "SquaredL2",
    "check_model_kind",
    "ict_levels",
]
