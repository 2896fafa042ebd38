"""Samplers for the reverse-time process: one file per method, one integration loop (:func:`base.integrate`).

``SOLVERS`` maps the names accepted by :func:`scoresde.sample` (and conf/solver/*.yaml) to solver classes;
a new solver is a :class:`Solver` subclass with a ``step`` method, added here or passed to ``sample`` as an object.
"""

from . import grids
from .adaptive_sde import AdaptiveSDE
from .ald import AnnealedLangevinDynamics
from .base import (
    BudgetExceededError,
    CountingScore,
    GridCoefficients,
    NonFiniteError,
    SampleInfo,
    Solver,
    StepContext,
    integrate,
)
from .ddim import DDIM
from .dpm_solver import DPMSolver, DPMSolver2, DPMSolver3
from .dpm_solver_sde import DPMSolverPP2MSDE
from .edm import EDMHeun
from .edm_sde import EDMStochastic
from .euler_maruyama import EulerMaruyama
from .exponential import ExponentialIntegrator
from .noise import BrownianNoise, GeneratorNoise, NoiseSource
from .ode import ODE_METHODS, ProbabilityFlowODE
from .pc import (
    CORRECTORS,
    PREDICTORS,
    Ancestral,
    AnnealedLangevin,
    Corrector,
    EulerMaruyamaPredictor,
    Langevin,
    NoCorrector,
    NoPredictor,
    Predictor,
    PredictorCorrector,
    ReverseDiffusion,
)
from .schedule import optimize_schedule
from .schedule_file import Schedule, load_schedule, save_schedule, schedule_path
from .unipc import UniPC


def _consistency_sampler() -> type[Solver]:
    """Algorithm 1 of Song et al. 2023 (scoresde.consistency imports this package, hence the late import)."""
    from ..consistency.sampler import ConsistencySampler

    return ConsistencySampler


SOLVERS: dict[str, type[Solver]] = {
    "euler_maruyama": EulerMaruyama,
    "pc": PredictorCorrector,
    "reverse_diffusion": ReverseDiffusion,
    "ancestral": Ancestral,
    "ald": AnnealedLangevinDynamics,
    "ode": ProbabilityFlowODE,
    "edm_heun": EDMHeun,
    "dpm_solver2": DPMSolver2,
    "dpm_solver3": DPMSolver3,
    "dpmpp_2m_sde": DPMSolverPP2MSDE,
    "edm_sde": EDMStochastic,
    "adaptive_sde": AdaptiveSDE,
    "dpm_solver": DPMSolver,
    "unipc": UniPC,
    "ddim": DDIM,
    "consistency": _consistency_sampler(),
}

__all__ = [
    "SOLVERS",
    "PREDICTORS",
    "CORRECTORS",
    "ODE_METHODS",
    "Solver",
    "StepContext",
    "GridCoefficients",
    "CountingScore",
    "SampleInfo",
    "NonFiniteError",
    "BudgetExceededError",
    "integrate",
    "grids",
    "EulerMaruyama",
    "PredictorCorrector",
    "Predictor",
    "Corrector",
    "ReverseDiffusion",
    "Ancestral",
    "EulerMaruyamaPredictor",
    "NoPredictor",
    "Langevin",
    "AnnealedLangevin",
    "NoCorrector",
    "AnnealedLangevinDynamics",
    "ProbabilityFlowODE",
    "EDMHeun",
    "DPMSolver2",
    "DPMSolver3",
    "DPMSolverPP2MSDE",
    "EDMStochastic",
    "AdaptiveSDE",
    "NoiseSource",
    "GeneratorNoise",
    "BrownianNoise",
    "DPMSolver",
    "UniPC",
    "DDIM",
    "ExponentialIntegrator",
    "optimize_schedule",
    "Schedule",
    "save_schedule",
    "load_schedule",
    "schedule_path",
]
