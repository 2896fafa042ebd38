"""Shared fixtures. Tests run single-threaded: on a busy 2-core machine that is the fast setting. The default run
spreads test modules over one pytest-xdist worker per core this process may use (``-n auto``, see
:func:`pytest_xdist_auto_num_workers`); ``-n 0`` runs everything in one process."""

import os

import pytest
import torch

import scoresde

torch.set_num_threads(1)


def pytest_xdist_auto_num_workers(config):
    """``-n auto``: the cores in this process's affinity mask (``os.sched_getaffinity``), not the machine's count."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # platforms without affinity masks
        return os.cpu_count() or 1


SDE_FACTORIES = {
    "vp": lambda: scoresde.VPSDE(),
    "subvp": lambda: scoresde.SubVPSDE(),
    "ve": lambda: scoresde.VESDE(sigma_min=0.01, sigma_max=5.0),
}

SHAPES = {"flat": (2,), "image": (3, 4, 4)}


@pytest.fixture(params=sorted(SDE_FACTORIES))
def sde(request):
    """Each of the three SDEs (VE with a sigma_max suited to unit-scale test data)."""
    return SDE_FACTORIES[request.param]()


@pytest.fixture(params=sorted(SHAPES))
def event_shape(request):
    """A low-dimensional and an image-shaped event."""
    return SHAPES[request.param]
