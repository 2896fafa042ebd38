"""Controllable generation with a score model: inpainting, colorization and guidance (Song et al. 2021, sec. 5).

Conditioning on an observation y of x turns the reverse process into one for p(x | y). This subpackage holds the
observation models and the conditional samplers; the CLI tasks built on them (``python -m scoresde.sample
task=...``) live in :mod:`scoresde.cli.tasks` and :mod:`scoresde.cli.guidance_tasks`.
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

_MOVED = {"Task": "scoresde.cli.tasks", "save_condition_grid": "scoresde.cli.tasks"}


def __getattr__(name: str):
    if name in _MOVED:  # moved with the CLI tasks; named here so that old code gets a pointer, not a bare error
        raise AttributeError(f"scoresde.conditioning.{name} moved to {_MOVED[name]}.{name}")
    raise AttributeError(f"module 'scoresde.conditioning' has no attribute {name!r}")
