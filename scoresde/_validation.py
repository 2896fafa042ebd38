"""Checks of user arguments, written once: the package's constructors and front ends validate through these.

Messages name the argument and what it accepts (``ValueError``), so a test can match them; a bool is never taken
for an integer.
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any, TypeVar

from ._utils import check_finite

T = TypeVar("T")

__all__ = ["is_int", "is_real", "check_int", "check_count", "check_positive", "check_choice", "check_finite"]


def is_int(value: Any) -> bool:
    """True for a Python integer that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_real(value: Any) -> bool:
    """True for a Python int or float that is not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_int(name: str, value: Any, minimum: int = 1) -> int:
    """An integer >= ``minimum`` (not a bool); raises ``ValueError`` "{name} must be an integer >= {minimum}"."""
    if not is_int(value) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def check_count(name: str, value: Any) -> int:
    """A count: an integer >= 1 (not a bool)."""
    return check_int(name, value, 1)


def check_positive(name: str, value: Any) -> float:
    """A positive finite number (not a bool), returned as a float."""
    if not is_real(value) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return float(value)


def check_choice(name: str, value: T, choices: Iterable[Any]) -> T:
    """One of ``choices``; raises ``ValueError`` "{name} must be one of [...]"."""
    choices = list(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")
    return value
