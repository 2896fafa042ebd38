"""Predictor-corrector sampling (Song et al. 2021, sec. 4.2 and Algorithms 1-5).

A predictor is a solver step from t_i to t_{i+1}; a corrector runs Langevin MCMC at t_i that leaves the
marginal p_{t_i} invariant. Every rule is built from the exact one-step kernel of the forward SDE,
x_{t_i} = r_i x_{t_{i+1}} + sqrt(v_i) z (:meth:`SDE.discretize`), so each works for VP, sub-VP and VE on
any grid without asking which SDE it holds: for VP, r_i^2 = 1 - beta_i and v_i = beta_i are DDPM's discrete
betas, for VE r_i = 1 and v_i = sigma_i^2 - sigma_{i+1}^2 are SMLD's level gaps. Since r_i = m(t_i)/m(t_{i+1}) > 0
and (for VP) beta_i = 1 - exp(-int beta) < 1 on every grid, no rule degenerates for small step counts. The only
refused combination is no predictor with no corrector (it would return the prior).
"""

from __future__ import annotations

import abc
from typing import Any

import torch
from torch import Tensor

from .._utils import append_dims
from .._validation import check_choice, check_int, check_positive, from_name
from .base import GaussianSolver, GaussianTransition, Solver, StepContext
from .euler_maruyama import EulerMaruyama


class Predictor(Solver):
    """A solver step used as the predictor of :class:`PredictorCorrector`."""


class ReverseDiffusion(GaussianSolver, Predictor):
    """Reverse-diffusion predictor (paper eq. 46) on the exact kernel f_i = (r_i - 1) x, G_i^2 = v_i.

        x_{i+1} = x_i - f_i + G_i^2 s(x_i, t_i) + G_i z = (2 - r_i) x_i + v_i s(x_i, t_i) + sqrt(v_i) z.

    This is ``sde.reverse(score).discretize`` with the step's coefficients precomputed.
    """

    order = 0.5

    def transition(self, x: Tensor, score: Tensor, i: int, ctx: StepContext) -> GaussianTransition:
        """The step's kernel given s(x_i, t_i): mean (2 - r_i) x_i + v_i s, variance v_i."""
        r, v = ctx.coeffs.r[i], ctx.coeffs.v[i]
        return GaussianTransition((2 - r) * x + v * score, v)


ANCESTRAL_VARIANCES = ("beta_tilde", "beta", "analytic")


class Ancestral(GaussianSolver, Predictor):
    """Ancestral sampling: draw x_{t_{i+1}} from the forward posterior q(x_{t_{i+1}} | x_{t_i}, x_0) at Tweedie's x_0.

    For the kernel x_{t_i} = r x_{t_{i+1}} + sqrt(v) z the posterior mean with m(t_i) x0_hat = x + s_i^2 score is
    (x + v score) / r, so

        x_{i+1} = (x_i + v_i s(x_i, t_i)) / r_i + sigma_i z,

    for VP DDPM's rule (Ho et al. 2020, eq. 11; paper eq. 47), for VE SMLD's (paper eq. 45); sub-VP gets its own
    from the same formula. The reverse variance sigma_i^2 is one of

    * "beta_tilde": the posterior variance lambda_i^2 = v_i s_{i+1}^2 / s_i^2, exact when x_0 is known: DDPM's
      sigma^2 = beta-tilde. It ignores the uncertainty of x0_hat, so on a coarse grid samples are too narrow;
    * "beta": sigma^2 = v_i, DDPM's other choice and the reference implementation's (score_sde_pytorch);
    * "analytic": Analytic-DPM's optimal variance (Bao et al. 2022, Thm. 1) in this kernel's terms,
      lambda_i^2 + b_i^2 (s_i / m_i)^2 (1 - s_i^2 Gamma_i), clipped to [lambda_i^2, lambda_i^2 + b_i^2 (s_i / m_i)^2],
      where b_i = m_{i+1} v_i / s_i^2 is the posterior mean's weight on x_0 and Gamma_i = E||s(x, t_i)||^2 / D
      (so (s_i / m_i)^2 (1 - s_i^2 Gamma_i) is the mean posterior variance of x_0). Bao et al. estimate Gamma_i by
      Monte Carlo over data; here it is the mean over the batch being sampled (no extra evaluation), so, like the
      reference's Langevin step, a sample depends on its batch.

    Args:
        variance: "analytic" (default; docs/guides/defaults.md), "beta_tilde" or "beta" (see above).
        grid: Where the steps fall, a name in ``grids.GRIDS`` (default "uniform").
        rho: Exponent of the "karras" grid.
    """

    order = 0.5
    reported = ("variance",)

    def __init__(self, variance: str = "analytic", *, grid: str | None = None, rho: float = 7.0) -> None:
        super().__init__(grid=grid, rho=rho)
        self.variance = check_choice("variance", variance, ANCESTRAL_VARIANCES)

    def transition(self, x: Tensor, score: Tensor, i: int, ctx: StepContext) -> GaussianTransition:
        """The step's kernel given s(x_i, t_i): mean (x_i + v_i s) / r_i and the chosen reverse variance."""
        c = ctx.coeffs
        r, v = c.r[i], c.v[i]
        lam2 = v * c.s[i + 1] ** 2 / c.s[i] ** 2
        if self.variance == "beta":
            var: Tensor | float = v
        elif self.variance == "analytic":
            b2_x0var = (c.m[i + 1] * v / c.s[i] ** 2) ** 2 * (c.s[i] / c.m[i]) ** 2
            gamma = score.flatten(1).pow(2).mean()
            var = lam2 + b2_x0var * (1 - c.s[i] ** 2 * gamma).clamp(0.0, 1.0)
        else:
            var = lam2
        return GaussianTransition((x + v * score) / r, var)


class NoPredictor(Predictor):
    """The identity: corrector-only sampling (paper Table 1, "C2000"). No score evaluation."""

    nfe_per_step = 0

    def step(self, x: Tensor, i: int, ctx: StepContext) -> Tensor:
        return x


class EulerMaruyamaPredictor(EulerMaruyama, Predictor):
    """Euler-Maruyama step of the reverse SDE as a predictor (paper Table 1, "P1000" with EM)."""


class Corrector(abc.ABC):
    """Langevin MCMC at a fixed time t_i targeting p_{t_i} (paper Algorithms 4-5)."""

    n_steps: int = 0

    @abc.abstractmethod
    def correct(self, x: Tensor, i: int, ctx: StepContext) -> Tensor:
        """Run the corrector at grid time t_i on x of shape (B, *event_shape)."""

    def describe(self) -> dict[str, Any]:
        return {}


class _LangevinBase(Corrector):
    def __init__(self, snr: float = 0.16, n_steps: int = 1) -> None:
        self.snr = check_positive("snr", snr)
        self.n_steps = check_int("n_steps (corrector steps per time)", n_steps)

    def describe(self) -> dict[str, Any]:
        return {"snr": self.snr, "n_corrector_steps": self.n_steps}

    @abc.abstractmethod
    def _step_size(self, score: Tensor, z: Tensor, i: int, ctx: StepContext) -> Tensor | float: ...

    def correct(self, x: Tensor, i: int, ctx: StepContext) -> Tensor:
        t = ctx.t(i)
        for _ in range(self.n_steps):
            score = ctx.score(x, t)
            z = ctx.noise(x)
            step = self._step_size(score, z, i, ctx)
            x = x + step * score + (2 * step) ** 0.5 * z
        return x


SNR_RULES = ("sample", "batch")


class Langevin(_LangevinBase):
    """Langevin corrector with a signal-to-noise step size (paper Algorithm 5).

        eps = 2 alpha_i (snr ||z|| / ||s(x)||)^2,   x <- x + eps s(x) + sqrt(2 eps) z,

    with alpha_i = r_i^2 of the kernel into t_i (1 - beta_i for VP, 1 for VE) and the norms taken

    * per sample ("sample"): eps_b from sample b's own z_b and s(x_b), so a sample's update never depends on the
      rest of its batch; or
    * over the batch ("batch"): ||z|| and ||s(x)|| are the batch means of the per-sample norms, one eps for the
      whole batch, as in the reference code (score_sde_pytorch, ``LangevinCorrector``). A sample then depends on
      its batch-mates (and on the batch size).

    A step size that depends on the state is not a valid Langevin step size: for small steps a per-sample chain
    leaves p(x) ||s(x)||^2 invariant instead of p(x), which inflates low-dimensional samples. Averaging over the
    batch makes eps almost a function of t alone, which removes most of that bias (the measurements:
    docs/guides/defaults.md), at the price of batch dependence. In low dimension prefer
    :class:`AnnealedLangevin`, whose step size depends on t only.

    Args:
        snr: The target signal-to-noise ratio r of Algorithm 5 (paper: 0.16 for VE on CIFAR-10).
        n_steps: Corrector steps per time.
        snr_rule: "sample" or "batch" (see above).
    """

    def __init__(self, snr: float = 0.16, n_steps: int = 1, snr_rule: str = "batch") -> None:
        super().__init__(snr, n_steps)
        check_choice("snr_rule", snr_rule, SNR_RULES)
        self.snr_rule = snr_rule

    def describe(self) -> dict[str, Any]:
        return super().describe() | {"snr_rule": self.snr_rule}

    def _step_size(self, score: Tensor, z: Tensor, i: int, ctx: StepContext) -> Tensor:
        tiny = torch.finfo(score.dtype).tiny
        z_norm, score_norm = z.flatten(1).norm(dim=1), score.flatten(1).norm(dim=1)
        if self.snr_rule == "batch":
            z_norm, score_norm = z_norm.mean(), score_norm.mean()
        ratio = z_norm / score_norm.clamp_min(tiny)
        return append_dims(2 * ctx.coeffs.r[i] ** 2 * (self.snr * ratio) ** 2, score.ndim)


class AnnealedLangevin(_LangevinBase):
    """Annealed Langevin corrector (paper Algorithm 4 as in the reference code): eps_i = 2 alpha_i (snr s(t_i))^2."""

    def _step_size(self, score: Tensor, z: Tensor, i: int, ctx: StepContext) -> float:
        return 2 * ctx.coeffs.r[i] ** 2 * (self.snr * ctx.coeffs.s[i]) ** 2


class NoCorrector(Corrector):
    """No correction."""

    def correct(self, x: Tensor, i: int, ctx: StepContext) -> Tensor:
        return x


PREDICTORS: dict[str, type[Predictor]] = {
    "euler_maruyama": EulerMaruyamaPredictor,
    "reverse_diffusion": ReverseDiffusion,
    "ancestral": Ancestral,
    "none": NoPredictor,
}
CORRECTORS: dict[str, type[Corrector]] = {
    "langevin": Langevin,
    "annealed_langevin": AnnealedLangevin,
    "none": NoCorrector,
}


def _named_options(kind: str, value: Any, accepts: dict[str, tuple[str, ...]], **options: Any) -> dict[str, Any]:
    """The options that are not None, checked against what the component named ``value`` accepts."""
    given = {k: v for k, v in options.items() if v is not None}
    allowed = accepts.get(value, ()) if isinstance(value, str) else ()
    extra = sorted(set(given) - set(allowed))
    if extra:
        takers = sorted(name for name, opts in accepts.items() if set(extra) <= set(opts))
        raise ValueError(
            f"{', '.join(extra)} apply only to a {kind} named {' or '.join(map(repr, takers))}, got {kind}={value!r}; "
            f"set them on a {kind.capitalize()} object instead (or leave them None)"
        )
    return given


class PredictorCorrector(Solver):
    """Predictor-corrector sampler (paper Algorithm 1): at every t_i the corrector, then the predictor to t_{i+1}.

    Args:
        predictor: A :class:`Predictor` or its name: "euler_maruyama", "reverse_diffusion", "ancestral", "none".
        corrector: A :class:`Corrector` or its name: "langevin", "annealed_langevin", "none".
        snr: Signal-to-noise ratio of a corrector given by name (None: its default 0.16, the paper's VE setting).
        n_corrector_steps: Corrector steps per time for a corrector given by name (None: 1).
        snr_rule: "batch" or "sample", for the corrector "langevin" (None: its default; see :class:`Langevin`).
        variance: Reverse variance of the predictor "ancestral" (None: its default; see :class:`Ancestral`).
        grid: Where the steps fall, a name in ``grids.GRIDS`` (default "uniform").
        rho: Exponent of the "karras" grid.

    Options left None are ignored, so a config may list them for every predictor and corrector. The paper's
    defaults: VE reverse_diffusion + langevin (snr 0.16); VP euler_maruyama or reverse_diffusion with corrector
    "none" (conf/solver/pc.yaml and conf/solver/pc_vp.yaml).
    """

    def __init__(
        self,
        predictor: str | Predictor = "reverse_diffusion",
        corrector: str | Corrector = "langevin",
        *,
        snr: float | None = None,
        n_corrector_steps: int | None = None,
        snr_rule: str | None = None,
        variance: str | None = None,
        grid: str | None = None,
        rho: float = 7.0,
    ) -> None:
        super().__init__(grid=grid, rho=rho)
        pred_options = _named_options("predictor", predictor, {"ancestral": ("variance",)}, variance=variance)
        self.predictor = from_name("predictor", predictor, PREDICTORS, Predictor, **pred_options)
        corr_accepts = {"langevin": ("snr", "n_steps", "snr_rule"), "annealed_langevin": ("snr", "n_steps")}
        corr_options = _named_options(
            "corrector", corrector, corr_accepts, snr=snr, n_steps=n_corrector_steps, snr_rule=snr_rule
        )
        self.corrector = from_name("corrector", corrector, CORRECTORS, Corrector, **corr_options)
        if isinstance(self.predictor, NoPredictor) and isinstance(self.corrector, NoCorrector):
            raise ValueError("predictor='none' with corrector='none' does nothing; choose at least one of them")
        self.nfe_per_step = self.predictor.nfe_per_step + self.corrector.n_steps

    def step(self, x: Tensor, i: int, ctx: StepContext) -> Tensor:
        return self.predictor.step(self.corrector.correct(x, i, ctx), i, ctx)

    def describe(self) -> dict[str, Any]:
        names = {v: k for k, v in PREDICTORS.items()} | {v: k for k, v in CORRECTORS.items()}
        pred, corr = type(self.predictor), type(self.corrector)
        return (
            super().describe()
            | {"predictor": names.get(pred, pred.__name__), "corrector": names.get(corr, corr.__name__)}
            | {k: v for k, v in self.predictor.describe().items() if k not in ("grid", "rho")}  # the PC's grid is used
            | self.corrector.describe()
        )
