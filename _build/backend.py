"""The build backend: setuptools' own, minus the ``build/`` directory it would leave in the checkout.

``pip install .`` builds the wheel in the source tree; setuptools stages files in ``build/`` and keeps it. This
wrapper removes ``build/`` after a wheel build when it did not exist before (a user's own build/ is kept).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from setuptools import build_meta as _setuptools
from setuptools.build_meta import *  # noqa: F403  (the PEP 517 / 660 hooks not wrapped below)

_BUILD = Path("build")


def build_wheel(wheel_directory, config_settings=None, metadata_directory=None):
    existed = _BUILD.exists()
    try:
        return _setuptools.build_wheel(wheel_directory, config_settings, metadata_directory)
    finally:
        if not existed:
            shutil.rmtree(_BUILD, ignore_errors=True)
