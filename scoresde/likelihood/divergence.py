"""Divergence of a vector field from ONE forward pass: exact trace or Hutchinson's estimator.

The instantaneous change-of-variables formula (Chen et al. 2018, thm. 1; Song et al. 2021 eq. 39)

    d log p_t(x(t)) / dt = -div f~(x(t), t)

needs div f~ = tr(d f~ / dx) along the probability-flow trajectory. Every estimator here receives the
output ``v = F(x)`` of a single forward pass (``x`` requiring grad) and only adds vector-Jacobian products
u^T (dF/dx), which reuse that pass's graph:

* :class:`ExactDivergence` sums the diagonal of the Jacobian with one VJP per coordinate (D of them,
  vectorised with ``is_grads_batched``): exact, for low-dimensional data.
* :class:`HutchinsonDivergence` uses tr(J) = E[u^T J u] for probes with E[u u^T] = I (Hutchinson 1989;
  FFJORD, Grathwohl et al. 2019): Rademacher (minimal variance among i.i.d. probes) or Gaussian. The probes are
  drawn once per solve (:meth:`draw`) and held fixed along the trajectory, so the integrand stays smooth for
  an adaptive solver and the integral of the estimate is unbiased for the integral of the divergence.

The Jacobian is taken per sample: the VJP of sum_b u_b^T F(x)_b with respect to x gives u_b^T dF_b/dx_b as
long as F treats the samples of a batch independently (true for networks in eval mode).
"""

from __future__ import annotations

import abc

import torch
from torch import Tensor

from .._utils import sum_except_batch
from .._validation import check_int


def _vjps(v: Tensor, x: Tensor, cotangents: Tensor) -> Tensor:
    """Vector-Jacobian products u_p^T dv/dx for a stack of cotangents (P, *v.shape) -> (P, *x.shape).

    One cotangent (a single Hutchinson probe) takes a plain VJP: the batching machinery costs about 7% of an
    evaluation of a cheap score on 2-D data.
    """
    batched = len(cotangents) > 1
    (out,) = torch.autograd.grad(v, x, cotangents if batched else cotangents[0], retain_graph=True,
                                 is_grads_batched=batched, allow_unused=True)  # fmt: skip
    if out is None:
        return torch.zeros_like(cotangents)
    return out if batched else out[None]


class Divergence(abc.ABC):
    """Estimates div F(x) = tr(dF/dx) per sample from F's output ``v`` and its input ``x`` (graph kept)."""

    def draw(self, x: Tensor, generator: torch.Generator | None = None) -> None:
        """Draw whatever randomness the estimator holds fixed for one solve (nothing for the exact trace)."""
        return None

    @abc.abstractmethod
    def __call__(self, v: Tensor, x: Tensor) -> Tensor:
        """Args: v = F(x) of shape (B, *event_shape), x with ``requires_grad``. Returns shape (B,)."""


class ExactDivergence(Divergence):
    """tr(dF/dx) from D vector-Jacobian products with the basis vectors e_i (batched over ``chunk`` at a time).

    Cost: D backward passes through the one forward pass; memory chunk * B * D. Meant for D up to a few hundred.

    Args:
        chunk: Number of basis vectors per batched VJP (bounds memory for large D).
    """

    def __init__(self, chunk: int = 256) -> None:
        self.chunk = check_int("chunk", chunk)

    def __call__(self, v: Tensor, x: Tensor) -> Tensor:
        batch, dim = x.shape[0], x[0].numel()
        trace = torch.zeros(batch, dtype=x.dtype, device=x.device)
        for start in range(0, dim, self.chunk):
            idx = torch.arange(start, min(start + self.chunk, dim), device=x.device)
            basis = torch.zeros(idx.numel(), batch, dim, dtype=v.dtype, device=v.device)
            basis[torch.arange(idx.numel(), device=x.device), :, idx] = 1.0
            jac_rows = _vjps(v, x, basis.reshape(idx.numel(), *v.shape)).reshape(idx.numel(), batch, dim)
            trace = trace + jac_rows[torch.arange(idx.numel(), device=x.device), :, idx].sum(0)
        return trace


class HutchinsonDivergence(Divergence):
    """Hutchinson's estimator (1/P) sum_p u_p^T (dF/dx) u_p with P probes fixed over a solve.

    Args:
        n_probes: Number of probes P averaged at every evaluation (all from the same forward pass).
    """

    def __init__(self, n_probes: int = 1) -> None:
        self.n_probes = check_int("n_probes", n_probes)
        self.probes: Tensor | None = None

    @abc.abstractmethod
    def _sample(self, shape: tuple[int, ...], like: Tensor, generator: torch.Generator | None) -> Tensor:
        """Probes of the given shape with E[u] = 0 and E[u u^T] = I."""

    def draw(self, x: Tensor, generator: torch.Generator | None = None) -> None:
        self.probes = self._sample((self.n_probes, *x.shape), x, generator)

    def __call__(self, v: Tensor, x: Tensor) -> Tensor:
        if self.probes is None or self.probes.shape[1:] != x.shape:
            raise RuntimeError("call draw(x) before evaluating a Hutchinson estimator on x")
        u = self.probes
        uJ = _vjps(v, x, u)
        return torch.stack([sum_except_batch(a * b) for a, b in zip(uJ, u, strict=True)]).mean(0)


class RademacherDivergence(HutchinsonDivergence):
    """Hutchinson's estimator with Rademacher probes u in {-1, +1}^D."""

    def _sample(self, shape, like, generator):
        bits = torch.randint(0, 2, shape, generator=generator, device=like.device)
        return (2 * bits - 1).to(like.dtype)


class GaussianDivergence(HutchinsonDivergence):
    """Hutchinson's estimator with standard-normal probes (Skilling 1989)."""

    def _sample(self, shape, like, generator):
        return torch.randn(shape, generator=generator, device=like.device, dtype=like.dtype)


DIVERGENCES: dict[str, type[Divergence]] = {
    "exact": ExactDivergence,
    "rademacher": RademacherDivergence,
    "gaussian": GaussianDivergence,
}
"""The string names accepted by :func:`scoresde.log_likelihood`."""


def make_divergence(divergence: str | Divergence, n_probes: int = 1) -> Divergence:
    """The estimator named ``divergence`` (a key of :data:`DIVERGENCES`), or ``divergence`` itself if an object."""
    if isinstance(divergence, Divergence):
        return divergence
    if divergence not in DIVERGENCES:
        raise ValueError(f"divergence must be one of {sorted(DIVERGENCES)} or a Divergence, got {divergence!r}")
    cls = DIVERGENCES[divergence]
    if issubclass(cls, HutchinsonDivergence):
        return cls(n_probes)
    if n_probes != 1:
        raise ValueError(f"n_probes applies to Hutchinson estimators only; the exact trace got n_probes={n_probes}")
    return cls()


def choose_divergence(name: str, dim: int, exact_max_dim: int) -> str:
    """``"auto"`` -> "exact" for data of at most ``exact_max_dim`` dims (the exact trace costs ``dim``
    vector-Jacobian products per evaluation), else "rademacher"; other names pass through unchanged."""
    if name == "auto":
        return "exact" if dim <= exact_max_dim else "rademacher"
    return name
