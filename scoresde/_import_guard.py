"""Keeps ``import scoresde`` free of global side effects; scoresde/__init__.py imports it before anything else.

The package's own modules set no global state. Some dependencies do on import: scipy (reached through torchdiffeq)
adds two warning filters. Those are recorded from here until :func:`restore` and then undone, so the caller's
``warnings.filters`` are what they were before ``import scoresde`` (tests/test_layers.py).
"""

import warnings

_guard = warnings.catch_warnings()
_guard.__enter__()


def restore() -> None:
    """Put back the warning filters (and ``showwarning``) as they were when this module was imported."""
    _guard.__exit__(None, None, None)
