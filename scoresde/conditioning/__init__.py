"""Controllable generation: guided scores for class-conditional sampling (and, from other modules, inverse problems)."""

from .guidance import (
    ClassifierFreeGuidance,
    ClassifierGuidance,
    classifier_free_guidance,
    classifier_guidance,
)
from .mixture import ComponentPosterior, ComponentScore

__all__ = [
    "ClassifierGuidance",
    "ClassifierFreeGuidance",
    "classifier_guidance",
    "classifier_free_guidance",
    "ComponentPosterior",
    "ComponentScore",
]
