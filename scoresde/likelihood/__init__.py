"""Likelihoods: exact log p(x) through the probability-flow ODE, bits/dim for discrete data, and baselines.

``ode`` integrates the ODE with its log-determinant (:func:`log_likelihood`, :func:`bits_per_dim`),
``divergence`` supplies div f~ (exact or Hutchinson), ``quantization`` the discrete-data convention behind
bits/dim, and ``baselines`` the simple densities the CLI reports beside the model.
``python -m scoresde.likelihood`` runs the likelihood CLI (:mod:`scoresde.cli.likelihood`).
"""

from .baselines import GaussianBaseline, PixelCategorical, fit_baselines
from .divergence import (
    Divergence,
    ExactDivergence,
    GaussianDivergence,
    HutchinsonDivergence,
    RademacherDivergence,
    choose_divergence,
    make_divergence,
)
from .ode import METHODS, AugmentedFlow, AugmentedODE, LikelihoodResult, bits_per_dim, log_likelihood
from .quantization import BitsPerDim, Quantization

__all__ = [
    "log_likelihood",
    "bits_per_dim",
    "LikelihoodResult",
    "AugmentedFlow",
    "AugmentedODE",
    "METHODS",
    "Divergence",
    "ExactDivergence",
    "HutchinsonDivergence",
    "RademacherDivergence",
    "GaussianDivergence",
    "make_divergence",
    "choose_divergence",
    "Quantization",
    "BitsPerDim",
    "GaussianBaseline",
    "PixelCategorical",
    "fit_baselines",
]
