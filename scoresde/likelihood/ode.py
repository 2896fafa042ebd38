"""Exact log-likelihoods through the probability-flow ODE, and bits/dim for discrete data.

The probability-flow ODE (Song et al. 2021, eq. 13) dx/dt = f~(x, t) = f(t) x - 1/2 g(t)^2 s(x, t) maps
data at time eps to a latent z = x(T). Augmented with its log-determinant (the instantaneous change of
variables, Chen et al. 2018; Song et al. 2021 appendix D.2, eq. 39),

    d/dt [x, delta] = [f~(x, t), div f~(x, t)],   x(eps) = x, delta(eps) = 0,
    log p_eps(x) = log p_T(z) + delta(T)         with p_T replaced by the SDE's prior N(0, prior_std^2 I).

The right-hand side (:class:`AugmentedFlow`) makes exactly ONE score call: the drift is the probability-flow
sampler's (:class:`scoresde.solvers.ode.FlowTerm`) and the divergence comes from vector-Jacobian products through
that same forward pass (:mod:`scoresde.likelihood.divergence`). The solve is the sampler's ODE solver on the
augmented state, through the sampler's loop (:class:`AugmentedODE`).

What the number is. With a perfect solver and the exact score the result is log p_eps(x) of the model whose
latent density is the prior; it differs from the true data density log p_0(x) by (i) the prior mismatch
log N(z; 0, prior_std^2 I) - log p_T(z), large for VE with a small sigma_max, and (ii) the smoothing from
stopping at eps, log p_eps(x) - log p_0(x). ``benchmarks/likelihood_accuracy.py`` reports both next to the
solver error.

Error control and batches. An adaptive solver shares one step-size sequence across the batch by default, under the
MAX over samples of each sample's own error norm (max of the RMS over its coordinates and |error| of its
log-determinant): every sample's local error meets rtol/atol as it would alone, and a sample's result depends on its
batch-mates only through the (finer) step sequence, i.e. within the solver tolerance (tested). The batch pays for its
hardest sample. ``per_sample=True`` ("dopri5") gives every sample its own step size and time instead
(:func:`scoresde.solvers.adaptive_ode.dopri5_per_sample`): the same per-sample tolerance, no dependence on the batch,
and the batch costs the sum of its samples' evaluations (fewer score rows; not always fewer batched calls), but the
easy samples are no longer solved more finely than requested. (torchdiffeq's default, and the reference
implementation's, is the RMS over the whole batch, which lets the easy samples dilute a hard one's error.
docs/guides/likelihood.md compares the three in speed and accuracy.)
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor
from tqdm.auto import tqdm

from .._utils import check_finite, event_size
from .._validation import check_choice, check_int, check_positive
from ..models.parameterization import check_score_sde
from ..sde import SDE, ScoreFn
from ..solvers.base import CountingScore, StepContext, check_steps_or_nfe, integrate
from ..solvers.ode import ODE_METHODS, FlowTerm, ProbabilityFlowODE, State
from .divergence import Divergence, make_divergence
from .quantization import BitsPerDim, Quantization

METHODS = frozenset(ODE_METHODS)
"""The methods of :data:`scoresde.solvers.ode.ODE_METHODS`: adaptive ("dopri5", "bosh3", "dopri8", "fehlberg2",
"adaptive_heun") and fixed-step Runge-Kutta ("euler", "midpoint", "heun", "rk4") on a grid of ``steps`` intervals,
all through the sampler's loop."""


@dataclass
class LikelihoodResult:
    """Output of :func:`log_likelihood`. Log-densities are in nats, summed over the D = prod(event_shape) dims.

    Attributes:
        logp: log p(x) = prior_logp + delta_logp, shape (B,).
        z: The latent x(T), shape (B, *event_shape).
        prior_logp: log N(z; 0, prior_std^2 I), shape (B,).
        delta_logp: int_eps^T div f~(x(t), t) dt (its estimate for Hutchinson divergences), shape (B,).
        nfe: Number of score evaluations (= right-hand-side evaluations; batched calls with ``per_sample``).
        wall_time: Seconds spent in the solve.
        nfe_per_sample: Evaluations of each sample, shape (B,), with ``per_sample=True``; else None.
    """

    logp: Tensor
    z: Tensor
    prior_logp: Tensor
    delta_logp: Tensor
    nfe: int
    wall_time: float
    nfe_per_sample: Tensor | None = None

    @property
    def nats_per_dim(self) -> Tensor:
        """-log p(x) / D, shape (B,)."""
        return -self.logp / self.z[0].numel()


class AugmentedFlow(FlowTerm):
    """The term d/dt [x, delta] = [f~, div f~] of the augmented probability-flow ODE: one score call per evaluation.

    The drift is :class:`~scoresde.solvers.ode.FlowTerm`'s; the divergence comes from vector-Jacobian products
    through the same forward pass. Hutchinson probes follow their samples when a per-sample solver evaluates a
    subset ``idx`` of the batch.

    Args:
        sde: The forward SDE.
        score: The (counted) score s(x, t).
        divergence: Estimator of div f~ (exact or Hutchinson, probes already drawn).
        progress: Optional tqdm bar over [eps, T] (total 1000: per mille of the time range), advanced to each t.
        eps: Start time of the solve (for the progress bar).
    """

    def __init__(self, sde: SDE, score: ScoreFn, divergence: Divergence, progress: Any = None, eps: float = 0.0):
        super().__init__(sde, score)
        self.divergence, self.progress, self.eps = divergence, progress, eps

    def __call__(self, t: float | Tensor, y: State, idx: Tensor | None = None) -> State:
        probes = getattr(self.divergence, "probes", None)
        if idx is not None and probes is not None:
            self.divergence.probes = probes[:, idx]
        try:
            with torch.enable_grad():
                x = y[0].detach().requires_grad_(True)
                drift = self.drift(t, x)
                div = self.divergence(drift, x)
        finally:
            if idx is not None and probes is not None:
                self.divergence.probes = probes
        if self.progress is not None:  # per sample: the slowest sample's time
            now = float(torch.as_tensor(t).min())
            self.progress.update(max(0, round(1000 * (now - self.eps) / (self.sde.T - self.eps)) - self.progress.n))
            self.progress.set_postfix(t=f"{now:.4f}", nfe=getattr(self.score, "calls", None), refresh=False)
        return drift.detach(), div.detach()


def _per_sample_max_norm(state: tuple[Tensor, Tensor]) -> Tensor:
    """Error norm of the shared adaptive step: max over samples of max(RMS of x's error, |delta's error|)."""
    x, delta = state
    rms = x.reshape(x.shape[0], -1).pow(2).mean(1).sqrt()
    return torch.maximum(rms, delta.abs()).max()


class AugmentedODE(ProbabilityFlowODE):
    """:class:`~scoresde.solvers.ProbabilityFlowODE` on the augmented term (an :class:`AugmentedFlow`), from eps up
    to T: the solver's grid walked backwards, the same methods, the shared adaptive step under the max-over-samples
    error norm (see the module docstring).

    Args:
        term: The right-hand side, holding the run's counted score.
        method: A name in :data:`METHODS`.
        rtol: Relative tolerance of adaptive methods.
        atol: Absolute tolerance of adaptive methods.
        options: Extra torchdiffeq options of a shared adaptive step.
        per_sample: Step size per sample ("dopri5" only).
    """

    def __init__(
        self, term: AugmentedFlow, method: str, rtol: float, atol: float, options: dict, per_sample: bool
    ) -> None:
        super().__init__(method, rtol, atol, per_sample)
        self.term, self.options = term, dict(options, norm=_per_sample_max_norm)

    def make_term(self, ctx: StepContext) -> AugmentedFlow:
        return self.term

    def plan(self, sde: SDE, eps: float, *, steps: int | None = None, nfe: int | None = None) -> Tensor:
        """Grid times eps = t_0 < ... < t_N = T (float64, shape (N + 1,))."""
        return super().plan(sde, eps, steps=steps, nfe=nfe).flip(0)


def log_likelihood(
    sde: SDE,
    score_fn: ScoreFn,
    x: Tensor,
    *,
    divergence: str | Divergence = "exact",
    n_probes: int = 1,
    method: str = "dopri5",
    rtol: float = 1e-5,
    atol: float = 1e-5,
    eps: float = 1e-5,
    steps: int | None = None,
    nfe: int | None = None,
    generator: torch.Generator | None = None,
    options: dict | None = None,
    progress: bool = False,
    per_sample: bool = False,
) -> LikelihoodResult:
    """log p(x) of the probability-flow ODE model (Song et al. 2021, appendix D.2), in nats.

    The solve runs through the sampler's loop (:func:`scoresde.solvers.base.integrate`) with the augmented state
    (x, delta) (:class:`AugmentedODE`): the same counted score, budget and non-finite check as sampling.

    Args:
        sde: Forward SDE whose prior closes the flow at T.
        score_fn: ``score_fn(x, t)`` -> score of x's shape; t has shape (B,).
        x: Data, shape (B, *event_shape), a floating dtype; the solve runs in that dtype.
        divergence: "exact" (trace of the Jacobian, D VJPs per step: low-dimensional data), "rademacher" or
            "gaussian" (Hutchinson estimators, probes fixed over the solve), or a :class:`Divergence`.
        n_probes: Hutchinson probes averaged at every evaluation, all from the same forward pass.
        method: One of :data:`METHODS`: adaptive ("dopri5", the default, as Song et al.; "bosh3", "dopri8", ...) or
            fixed-step Runge-Kutta ("euler", "midpoint", "heun", "rk4") on a uniform grid of ``steps`` intervals.
        rtol: Relative tolerance of the adaptive solver.
        atol: Absolute tolerance of the adaptive solver.
        eps: Start time in (0, T): the data is placed at t = eps.
        steps: Grid intervals of a fixed-step method (default 100); output intervals of an adaptive one (default 1).
        nfe: Budget of score evaluations instead of ``steps``: a fixed-step method takes nfe // stages steps, an
            adaptive one raises :class:`~scoresde.solvers.BudgetExceededError` if its error control needs more.
        generator: Random source of the Hutchinson probes.
        options: Extra torchdiffeq options of an adaptive method (the error norm is fixed, see the module
            docstring); a fixed-step method accepts ``{"step_size": h}`` only, as ceil((T - eps) / h) steps.
        progress: Show a tqdm bar over the time range [eps, T], with the NFE so far.
        per_sample: With method "dopri5", solve every sample with its own step size and time
            (:func:`scoresde.solvers.adaptive_ode.dopri5_per_sample`, the same per-sample tolerance): the batch
            costs the sum of its samples' evaluations, not the batch size times the hardest sample's, and a
            sample's result does not depend on its batch (see the module docstring). ``nfe`` then counts batched
            calls; the per-sample counts are in ``nfe_per_sample``.

    Returns:
        A :class:`LikelihoodResult`.

    Raises:
        NonFiniteError: if the state, the score or the divergence becomes NaN/inf (names the step and time).
        ValueError: if ``score_fn`` is a :class:`scoresde.ScoreModel` built for another SDE than ``sde``.
    """
    start = time.perf_counter()
    if not isinstance(x, Tensor):
        raise TypeError(f"x must be a torch.Tensor, got {type(x).__name__}")
    if x.ndim < 2 or x.shape[0] == 0 or x[0].numel() == 0:
        raise ValueError(f"x must have shape (B, *event_shape) with B >= 1 and a non-empty event, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"x must have a floating dtype, got {x.dtype}")
    check_finite(x, "x")
    check_score_sde(sde, score_fn)
    eps = check_positive("eps", eps)
    if eps >= sde.T:
        raise ValueError(f"eps must lie in (0, T) = (0, {sde.T}), got {eps}")
    check_choice("method", method, METHODS)  # rtol and atol: checked by the solver
    check_steps_or_nfe(steps, nfe)
    estimator = make_divergence(divergence, n_probes)
    options = dict(options or {})
    if "norm" in options:
        raise ValueError("options may not set 'norm': the per-sample error norm is part of this function's contract")
    if not ODE_METHODS[method].adaptive:
        if "step_size" in options:
            h = check_positive("options['step_size']", options.pop("step_size"))
            if steps is not None or nfe is not None:
                raise ValueError("give options={'step_size': h}, steps or nfe, not two of them")
            steps = max(1, math.ceil((sde.T - eps) / h - 1e-9))
        if options:
            raise ValueError(f"fixed-step method {method!r} takes only the option 'step_size', got {sorted(options)}")
    if per_sample and (method != "dopri5" or options):
        raise ValueError(f"per_sample=True needs method='dopri5' and no options, got {method!r}, {options}")

    x = x.detach()
    estimator.draw(x, generator)
    bar = tqdm(total=1000, desc="log-likelihood (per mille of [eps, T])", leave=False) if progress else None
    score = CountingScore(score_fn, nfe)
    solver = AugmentedODE(AugmentedFlow(sde, score, estimator, bar, eps), method, rtol, atol, options, per_sample)
    times = solver.plan(sde, eps, steps=steps, nfe=nfe)
    state = (x, torch.zeros(x.shape[0], dtype=x.dtype, device=x.device))
    stats: dict[str, Any] = {}
    try:
        (z, delta_logp), _ = integrate(solver, sde, score, state, times, stats=stats, nfe_budget=nfe)
    finally:
        if bar is not None:
            bar.close()
    prior_logp = sde.prior_logp(z)
    per = stats.get("nfe_per_sample")
    return LikelihoodResult(
        logp=prior_logp + delta_logp,
        z=z,
        prior_logp=prior_logp,
        delta_logp=delta_logp,
        nfe=score.calls,
        wall_time=time.perf_counter() - start,
        nfe_per_sample=None if per is None else torch.tensor(per, device=x.device),
    )


def bits_per_dim(
    sde: SDE,
    score_fn: ScoreFn,
    x: Tensor,
    *,
    levels: int,
    data_range: tuple[float, float] = (-1.0, 1.0),
    n_dequant: int = 1,
    centred_bins: bool = False,
    generator: torch.Generator | None = None,
    **likelihood_kwargs,
) -> BitsPerDim:
    """Bits/dim of discrete data under the ODE model, with uniform dequantisation (an upper bound on -log2 P / D).

    Derivation. Level k (in {0..K-1}^D, read off x by :meth:`Quantization.to_levels`) owns the bin
    B_k = prod_i [lo + w k_i, lo + w (k_i + 1)) of width w = (hi - lo) / K per coordinate (with
    ``centred_bins``: w = (hi - lo) / (K - 1) and every bin shifted by -w/2, centring it on the model value).
    Disjoint bins turn a continuous model density p into the discrete model probability

        P(k) = int_{B_k} p(y) dy = w^D E_u[p(y(k, u))],   y(k, u) = lo + w (k + u),  u ~ U[0, 1)^D,

    and Jensen's inequality gives log P(k) >= E_u[log p(y)] + D log w. Hence

        bpd(k) = -(E_u[log p(y)] + D log w) / (D ln 2)  >=  -log2 P(k) / D,

    estimated with ``n_dequant`` draws of u. D log w is the change of variables from the model range to the
    unit-width bins of the level space v = k + u (the "+7 bits" of 8-bit images in [-1, 1], never a
    hard-coded offset). The importance-weighted form log P(k) ~ log mean_j p(y_j) + D log w (Burda et al.
    2016) is tighter for n_dequant > 1 and is returned as ``per_sample_iw``.

    Args:
        sde, score_fn: As for :func:`log_likelihood`.
        x: Discrete data in model values lo + (hi - lo) k / (K - 1), shape (B, *event_shape).
        levels: Number of levels K >= 2.
        data_range: (lo, hi) of the model values.
        n_dequant: Dequantisation draws per example (solved together in one batch of B * n_dequant).
        centred_bins: Use bins of width (hi - lo) / (K - 1) centred on the model values (y = lo + w (k + u - 1/2))
            instead of the contract's K bins tiling [lo, hi); see :class:`Quantization`. Same derivation.
        generator: Random source of u and of Hutchinson probes.
        **likelihood_kwargs: Passed on to :func:`log_likelihood` (divergence, n_probes, rtol, atol, eps, method,
            progress).

    Returns:
        :class:`BitsPerDim` with per-example bounds (B,), their mean and standard error, and the NFE.
    """
    quant = Quantization(levels, data_range, centred=centred_bins)
    check_int("n_dequant", n_dequant)
    if not isinstance(x, Tensor) or x.ndim < 2:
        raise ValueError("x must be a tensor of shape (B, *event_shape)")
    dtype = x.dtype if x.is_floating_point() else torch.get_default_dtype()
    k = quant.to_levels(x)
    batch, dim = x.shape[0], event_size(x)
    k = k.unsqueeze(0).expand(n_dequant, *k.shape).reshape(n_dequant * batch, *k.shape[1:])
    u = torch.rand(k.shape, generator=generator, dtype=torch.float64, device=x.device)
    y = quant.dequantize(k, u).to(dtype)
    res = log_likelihood(sde, score_fn, y, generator=generator, **likelihood_kwargs)
    logp = res.logp.double().reshape(n_dequant, batch)
    scale = -1.0 / (dim * math.log(2.0))
    jensen = scale * (logp.mean(0) + quant.log_bin_volume(dim))
    iw = scale * (torch.logsumexp(logp, 0) - math.log(n_dequant) + quant.log_bin_volume(dim))
    return BitsPerDim.from_values(jensen, nfe=res.nfe, wall_time=res.wall_time, per_sample_iw=iw)
