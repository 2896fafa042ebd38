"""A particle filter on the reverse chain whose samples converge to the exact posterior p(x | y).

Under a linear SDE with scalar coefficients the observed part of x_t (in the observation's basis) is the
observation forward-noised by itself. Draw one forward path y_{t_0}, ..., y_{t_N} of it (:class:`ObservedPath`
with ``noise="bridge"``). Since the path depends on x_0 only through y, conditioning the reverse chain
x_{t_0} -> ... -> x_{t_N} on "observed part of x_{t_i} = y_{t_i} for every i" conditions x_0 on y alone: the
filtering posterior sampler of Dou & Song (ICLR 2024) for noiseless linear observations. Each reverse step is a
Gaussian kernel x_{t_{i+1}} ~ N(mu(x_{t_i}), sigma_i^2 I), so the locally optimal proposal is explicit: the
unobserved part from the kernel, the observed part set to y_{t_{i+1}}, with incremental weight
N(y_{t_{i+1}}; mu(x_{t_i})[observed], sigma_i^2 I). The weights are resampled (systematically) when the effective
sample size (Kong 1992; ESS = 1 / sum w_k^2) drops below a fraction of the particle count.

With K particles the filter is consistent as K grows (Del Moral 2004), up to the discretisation error of the
reverse kernel, which vanishes as the steps grow. One sample per observation is drawn from the final weighted
particles, so a run costs K x (steps + 1) score evaluations per sample.
"""

from __future__ import annotations

import copy
import functools
import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .._validation import check_choice, check_int, check_number, is_int
from ..sde import SDE
from ..solvers import grids
from ..solvers.base import Solver, StepContext, integrate
from ..solvers.euler_maruyama import EulerMaruyama
from ..solvers.pc import Ancestral, ReverseDiffusion
from .ensemble import EnsembleJacobian, ObservedCovariance
from .methods import ConditionalMethod
from .observation import BoundObservation, ObservedPath

DEFAULT_PARTICLES = 30  # without a budget (and at 1000 evaluations per sample)

Kernel = Callable[[Tensor, Tensor, int, StepContext], tuple[Tensor, float | Tensor]]
"""``kernel(x, score, i, ctx) -> (mean, variance)`` of a Gaussian reverse step from t_i to t_{i+1}, given the
score s(x, t_i)."""


KERNELS: dict[str, Kernel] = {
    "ancestral": Ancestral("beta_tilde").transition,
    "reverse_diffusion": ReverseDiffusion().transition,
    "euler_maruyama": EulerMaruyama().transition,
}
"""The filter's reverse steps: the Gaussian transitions of the samplers' own steps (:meth:`Ancestral.transition` with
the posterior variance, :meth:`ReverseDiffusion.transition`, :meth:`EulerMaruyama.transition`)."""


GRIDS = {
    "log_snr": grids.uniform_log_snr,
    "uniform": grids.uniform,
    "quadratic": grids.quadratic,
    "karras": grids.karras,
    "logistic": functools.partial(grids.logistic, width=2.0),
}
"""Time grids of the filter (:mod:`scoresde.solvers.grids`). "logistic" (the default) is the bump of width 2 around
sigma = 1: with about 100 steps the step count, not K, limits the error, and these steps go where sigma is near the
data's scale (the measurements: docs/guides/defaults.md)."""


def effective_sample_size(logw: Tensor) -> Tensor:
    """ESS = (sum w)^2 / sum w^2 of unnormalised log-weights (B, K), per row: shape (B,), in [1, K]."""
    return torch.exp(2 * logw.logsumexp(1) - (2 * logw).logsumexp(1))


def systematic_resample(logw: Tensor, generator: torch.Generator | None) -> Tensor:
    """Systematic resampling (Kitagawa 1996) per row of log-weights (B, K): ancestor indices (B, K) in [0, K)."""
    b, k = logw.shape
    cdf = logw.softmax(1).cumsum(1)
    u = (torch.rand(b, 1, generator=generator, dtype=logw.dtype, device=logw.device) + torch.arange(k).to(logw)) / k
    return torch.searchsorted(cdf, u).clamp_max(k - 1)


class FilterStep(Solver):
    """One step of the particle filter on states (B * K, *event_shape), particles of a sample contiguous.

    With ``twist``, the weights also carry psi_i(x_{t_i}) = N(y; x0_hat(x_{t_i})[observed], sigma(t_i)^2 I), Tweedie's
    estimate of p(y | x_{t_i}) (the twisting function of Wu et al. 2023, here without the gradient in the proposal):
    particles whose denoised estimate disagrees with y are dropped early. Each factor psi_i is divided out at the next
    step and the last one at the end (:meth:`finish`), so the target, and the consistency, are unchanged.
    """

    def __init__(
        self, kernel: Kernel, obs: BoundObservation, path: ObservedPath, particles: int, ess_threshold: float,
        twist: bool, ensemble: bool = False, probes: int = 6,
    ) -> None:  # fmt: skip
        self.kernel, self.obs, self.path, self.k, self.threshold = kernel, obs, path, particles, ess_threshold
        self.twist, self.ensemble, self.probes = twist, ensemble, probes
        self.logw = torch.zeros(obs.batch, particles, dtype=obs.y.dtype, device=obs.y.device)
        self.log_psi = torch.zeros_like(self.logw)
        self.ess: list[Tensor] = []  # mean ESS / K over the samples, before each resampling decision
        self.resampled = 0

    def step(self, x: Tensor, i: int, ctx: StepContext) -> Tensor:
        c, k = ctx.coeffs, self.k
        y_next = self.path.at(i + 1)
        score = ctx.score(x, ctx.t(i))
        mean, var = self.kernel(x, score, i, ctx)
        x0 = (x + c.s[i] ** 2 * score) / c.m[i]  # Tweedie's x0_hat(x_{t_i})
        jac = None
        if self.ensemble:
            jac, loglik, shift = self._ensemble_terms(x, x0, mean, var, y_next, i, ctx)
            mean = mean + shift
        else:
            loglik = -self.obs.residual(mean, y_next, k).view(-1, k) / (2 * var)
        logw = self.logw + loglik
        if self.twist:
            log_psi = -self.obs.residual(x0, self.obs.y, k).view(-1, k) / (2 * c.sigma[i] ** 2)
            logw, self.log_psi = logw + log_psi - self.log_psi, log_psi
        self.logw = logw - logw.amax(1, keepdim=True)
        ess = effective_sample_size(self.logw)
        self.ess.append(ess.mean() / k)
        low = ess < self.threshold * k
        if bool(low.any()):
            idx = systematic_resample(self.logw, ctx.generator)
            keep = torch.arange(k, device=idx.device).expand_as(idx)
            idx = torch.where(low[:, None], idx, keep)  # only the samples whose ESS fell are resampled
            rows = (idx + k * torch.arange(idx.shape[0], device=idx.device)[:, None]).reshape(-1)
            mean = mean[rows]
            self.log_psi = self.log_psi.gather(1, idx)
            self.logw = torch.where(low[:, None], torch.zeros_like(self.logw), self.logw)
            self.resampled += int(low.sum())
        x = mean + math.sqrt(var) * ctx.noise(mean)
        if jac is not None:  # the step's missing variance c0^2 Gamma_uu, on the span of the particles
            b = self.obs.batch
            xi = ctx.noise(torch.empty(b, k, k, dtype=x.dtype, device=x.device))
            scale = c.v[i] * c.m[i + 1] / c.s[i] ** 2 * c.s[i] / math.sqrt(c.m[i])  # c0 sqrt(s^2 / m)
            x = x + self.obs.from_basis((scale * jac.sqrt_noise(xi)).reshape(x.shape))
        return self.obs.merge(x, y_next, k)

    def _ensemble_terms(self, x: Tensor, x0: Tensor, mean: Tensor, var: float, y_next: Tensor, i: int, ctx) -> tuple:
        """J's fit, the log-likelihood of y_{t_{i+1}} per particle (B, K) and the shift of u (see :mod:`.ensemble`)."""
        b, k, obs, c = self.obs.batch, self.k, self.obs, ctx.coeffs
        observed = obs.mask.reshape(obs.mask.shape[0], 1, -1).to(x.dtype)
        z = obs.to_basis(x).reshape(b, k, -1)
        jac = EnsembleJacobian.fit(z, obs.to_basis(x0).reshape(b, k, -1), 1 - observed)
        c0, s2m = c.v[i] * c.m[i + 1] / c.s[i] ** 2, c.s[i] ** 2 / c.m[i]  # x0_hat's weight in the mean; s^2 / m
        d = (obs.repeat(y_next, k) - obs.to_basis(mean)).reshape(b, k, -1) * observed
        q = ObservedCovariance.directions(d, jac.dx0, observed, self.probes)
        cov = ObservedCovariance(q, self._probe(z.mean(1), q, i, ctx, math.sqrt(var)), var, c0)
        e = cov.solve(d)  # S_oo^{-1} d
        shift = (c0**2 * s2m) * jac.transpose_times(e)  # c0^2 Gamma_uo S_oo^{-1} d
        return jac, -0.5 * (d * e).sum(2), obs.from_basis(shift.reshape(x.shape))

    def _probe(self, z_bar: Tensor, q: Tensor, i: int, ctx, h: float) -> Tensor:
        """G_R = Q Gamma Q^T at the particles' mean z_bar (B, D): Gamma v = (s^2/m^2)(v + s^2 (s(x + h v) - s(x)) / h).

        One score evaluation per sample at z_bar and one per direction (forward differences, h = lambda, the scale of
        the innovations); the eigenvalues are clipped at 0.
        """
        c, obs, b = ctx.coeffs, self.obs, self.obs.batch
        shape = (b, *self.obs.y.shape[1:])
        x_bar, t = obs.from_basis(z_bar.reshape(shape)), ctx.t(i)[:b]
        base = ctx.score(x_bar, t)
        rows = []
        for j in range(q.shape[1]):
            v = obs.from_basis(q[:, j].reshape(shape))
            gv = (c.s[i] ** 2 / c.m[i] ** 2) * (v + c.s[i] ** 2 * (ctx.score(x_bar + h * v, t) - base) / h)
            rows.append(obs.to_basis(gv).reshape(b, -1))
        g = q @ torch.stack(rows, 1).transpose(1, 2)
        ev, vec = torch.linalg.eigh(0.5 * (g + g.transpose(1, 2)))
        return (vec * ev.clamp_min(0)[:, None, :]) @ vec.transpose(1, 2)

    def finish(self) -> Tensor:
        """The final log-weights (B, K) of the untwisted target."""
        return self.logw - self.log_psi


class ParticleFilter(ConditionalMethod):
    """Sequential Monte Carlo for p(x | y) with the forward-noised observation as data (see the module docstring).

    Args:
        particles: K, particles per sample. None (default): chosen from the budget, K = round(0.95 sqrt(nfe)) (30 at
            1000 evaluations per sample; 30 without a budget, see :meth:`for_budget`), so K and the steps grow
            together and the error falls with the budget.
        kernel: The Gaussian reverse step: "ancestral" (default), "reverse_diffusion" or "euler_maruyama".
        ess_threshold: Resample a sample's particles when their ESS falls below this fraction of K (1 = always).
        grid: One of :data:`GRIDS`: "logistic" (default; most steps near the data's scale, sigma ~ 1), "log_snr"
            (uniform in lambda = -log sigma), "quadratic" or "uniform" in t, "karras".
        twist: Weight with Tweedie's twisting function too (see :class:`FilterStep`); the target is the same either
            way.
        final_weight: Weight the final denoising step too: the last twist is replaced by N(y; x0_hat(x_eps)[observed],
            sigma(eps)^2 I), Tweedie's p(y | x_eps), so the particles target x_eps given y rather than given its
            noisy observed part y_eps alone (the filter's target before the final step).
        ensemble: Restore the terms the ancestral kernel drops (:mod:`.ensemble`; default None: on with the
            ancestral kernel): the predictive variance of the next observation, the shift of the unobserved part
            towards it and the step's missing variance, from the denoiser's Jacobian fitted on each sample's
            particles and probed on the observed part. The steps then carry far less bias, so the budget goes to
            particles (1000 evaluations: K = 30, 26 steps).
        probes: With ``ensemble``, R, the directions along which the observed block of Cov[x0 | x_t] is measured;
            each step costs R + 1 more score evaluations per sample (on one state, not per particle).

    ``info.extras`` reports ``particles``, ``ess`` (mean ESS / K per step, shape (N,)), ``final_ess`` (mean ESS / K
    of the final weights, from which the sample is drawn), ``resampled`` (resampling events over samples and steps)
    and ``score_calls`` (batched calls); ``info.nfe`` counts evaluations per sample: K per call on the particles, one
    per call on the ensemble's probes (R + 1 of them per step).
    """

    default_steps = 100

    def __init__(
        self,
        particles: int | None = None,
        kernel: str = "ancestral",
        ess_threshold: float = 0.5,
        grid: str = "logistic",
        twist: bool = True,
        final_weight: bool = True,
        ensemble: bool | None = None,
        probes: int = 6,
    ) -> None:
        check_choice("grid", grid, GRIDS)
        if particles is not None and (not is_int(particles) or particles < 1):
            raise ValueError(f"particles must be None (chosen from the budget) or an integer >= 1, got {particles!r}")
        check_choice("kernel", kernel, KERNELS)
        self.particles, self.kernel = particles, kernel
        self.ess_threshold = check_number("ess_threshold", ess_threshold, 0, 1)
        self.grid_name, self.twist = grid, bool(twist)
        self.final_weight = bool(final_weight)
        if ensemble is None:
            ensemble = kernel == "ancestral"
        if ensemble and kernel != "ancestral":
            raise ValueError(f"ensemble=True corrects the ancestral kernel only, got kernel={kernel!r}")
        self.ensemble, self.probes = bool(ensemble), check_int("probes", probes)
        # the ensemble's steps carry little bias, so its budget goes to particles (26 steps of K = 30: 992 evaluations)
        self.default_steps = 26 if self.ensemble else 100

    @property
    def k(self) -> int:
        """The number of particles: ``particles``, or 30 when it is left to the budget and there is none."""
        return self.particles if self.particles is not None else DEFAULT_PARTICLES

    def for_budget(self, nfe: int | None) -> ParticleFilter:
        """With ``particles=None``: K = round(0.95 sqrt(nfe)) (at least 2), so K and the steps grow together.

        At nfe = 1000 that is K = 30 and, with ``ensemble``, 26 steps (992 evaluations).
        """
        if self.particles is not None:
            return self
        method = copy.copy(self)
        method.particles = DEFAULT_PARTICLES if nfe is None else max(2, round(0.95 * math.sqrt(nfe)))
        return method

    def grid(self, sde: SDE, steps: int, eps: float) -> Tensor:
        return GRIDS[self.grid_name](sde, steps, eps)

    def cost(self, sde: SDE, steps: int, eps: float, denoise: bool) -> int:
        probes = (self.probes + 1) * steps if self.ensemble else 0  # on one state per sample
        return self.k * (steps + int(denoise)) + probes

    def run(self, sde, score, obs, times, *, denoise, generator, progress) -> tuple[Tensor, dict[str, Any]]:
        k, y = self.k, obs.y
        path = ObservedPath("bridge")
        path.start(y, sde.mean_scale(times).tolist(), sde.std(times).tolist(), generator)
        shape = (y.shape[0] * k, *y.shape[1:])
        x = obs.merge(sde.prior_sampling(shape, generator=generator, device=y.device, dtype=y.dtype), path.at(0), k)
        step = FilterStep(
            KERNELS[self.kernel], obs, path, k, self.ess_threshold, self.twist, self.ensemble, self.probes
        )
        x, _ = integrate(step, sde, score, x, times, generator=generator, progress=progress, denoise=denoise)
        logw = step.finish()
        if denoise and self.final_weight:  # x is Tweedie's x0_hat(x_eps), its observed part not yet replaced by y
            t = times[-1]
            logw = logw - obs.residual(x, y, k).view(-1, k) / (2 * float(sde.std(t) / sde.mean_scale(t)) ** 2)
        pick = torch.multinomial(logw.softmax(1), 1, generator=generator).squeeze(1)
        x = x.view(y.shape[0], k, *y.shape[1:])[torch.arange(y.shape[0], device=y.device), pick]
        ess = torch.stack(step.ess).cpu() if step.ess else torch.ones(0)
        extras = {
            "score_calls": score.calls,
            "ess": ess,
            "final_ess": float(effective_sample_size(logw).mean()) / k,
            "resampled": step.resampled,
        }
        return x, extras

    def describe(self) -> dict[str, Any]:
        return {"particles": self.k, "kernel": self.kernel, "ess_threshold": self.ess_threshold,
                "grid": self.grid_name, "twist": self.twist, "final_weight": self.final_weight,
                "ensemble": self.ensemble, "probes": self.probes if self.ensemble else 0}  # fmt: skip
