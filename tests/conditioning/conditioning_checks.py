"""Shared by the conditioning tests: the SDEs, and a correlated 12-D Gaussian with every other coordinate observed."""

import torch

import scoresde
from scoresde.conditioning import Observation, gaussian_posterior
from scoresde.oracle import anisotropic_gaussian

SDES = {
    "vp": lambda: scoresde.VPSDE(),
    "subvp": lambda: scoresde.SubVPSDE(),
    "ve": lambda: scoresde.VESDE(sigma_min=0.01, sigma_max=20.0),
}


def gaussian_problem():
    """(distribution, observed sample y (12,), mask (12,), exact posterior of the unobserved coordinates)."""
    g = anisotropic_gaussian(12, seed=0)
    y = g.sample(1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)[0]
    mask = torch.zeros(12, dtype=torch.bool)
    mask[::2] = True
    return g, y, mask, gaussian_posterior(g, Observation(mask), y)


def fd_ratio(post, x, n_floor=10, seed=1):
    """Fréchet distance of samples x to the exact posterior over the mean FD of as many exact draws."""
    gen = torch.Generator().manual_seed(seed)
    floor = sum(post.frechet(post.sample(x.shape[0], generator=gen)) for _ in range(n_floor)) / n_floor
    return post.frechet(post.coords(x)) / floor
