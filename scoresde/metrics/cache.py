"""Where the metrics keep what they compute once: trained classifiers and reference statistics.

The root is, in order: the ``root`` argument, the ``SCORESDE_CACHE`` environment variable, ``~/.cache/scoresde``.
"""

from __future__ import annotations

import os
from pathlib import Path

CACHE_ENV = "SCORESDE_CACHE"


def cache_dir(root: str | Path | None = None) -> Path:
    """The cache root (not created here)."""
    if root is not None:
        return Path(root).expanduser()
    env = os.environ.get(CACHE_ENV)
    return Path(env).expanduser() if env else Path.home() / ".cache" / "scoresde"
