"""Controllable generation with a score model: inpainting, colorization and guidance (Song et al. 2021, sec. 5).

Conditioning on an observation y of x turns the reverse process into one for p(x | y). This subpackage holds the
observation models, the conditional samplers and the CLI tasks (``python -m scoresde.sample task=...``).
"""

from .guidance import ClassifierFreeGuidance, ClassifierGuidance, classifier_free_guidance, classifier_guidance
from .mixture import ComponentPosterior, ComponentScore
from .tasks import Task, save_condition_grid

__all__ = [
    "Task",
    "save_condition_grid",
    "ClassifierGuidance",
    "ClassifierFreeGuidance",
    "classifier_guidance",
    "classifier_free_guidance",
    "ComponentPosterior",
    "ComponentScore",
]
