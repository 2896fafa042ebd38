"""Controllable generation with a score model: inpainting, colorization and guidance (Song et al. 2021, sec. 5).

Conditioning on an observation y of x turns the reverse process into one for p(x | y). This subpackage holds the
observation models, the conditional samplers and the CLI tasks (``python -m scoresde.sample task=...``).
"""

from .colorization import COLOR_BASIS, colorize, grey_observation, to_grey
from .exact import GaussianPosterior, gaussian_posterior
from .guidance import ClassifierFreeGuidance, ClassifierGuidance, classifier_free_guidance, classifier_guidance
from .inpainting import RePaint, Replacement, inpaint
from .methods import ConditionalMethod
from .mixture import ComponentPosterior, ComponentScore
from .noisy_classifier import NoisyClassifier, load_noisy_classifier, train_noisy_classifier
from .observation import BoundObservation, Observation, ObservedPath
from .smc import ParticleFilter
from .tasks import Task, save_condition_grid

__all__ = [
    "inpaint",
    "colorize",
    "COLOR_BASIS",
    "grey_observation",
    "to_grey",
    "Observation",
    "BoundObservation",
    "ObservedPath",
    "ConditionalMethod",
    "Replacement",
    "RePaint",
    "ParticleFilter",
    "gaussian_posterior",
    "GaussianPosterior",
    "Task",
    "save_condition_grid",
    "ClassifierGuidance",
    "ClassifierFreeGuidance",
    "classifier_guidance",
    "classifier_free_guidance",
    "ComponentPosterior",
    "ComponentScore",
    "NoisyClassifier",
    "train_noisy_classifier",
    "load_noisy_classifier",
]
