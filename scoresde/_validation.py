"""Checks of user arguments, written once: the package's constructors and front ends validate through these.

Messages name the argument and what it accepts (``ValueError``), so a test can match them; a bool is never taken
for an integer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

from ._utils import check_finite

T = TypeVar("T")

__all__ = [
    "is_int",
    "is_real",
    "check_int",
    "check_count",
    "check_positive",
    "check_choice",
    "check_finite",
    "check_callable",
    "check_sde",
    "from_name",
]


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


def check_callable(name: str, value: T) -> T:
    """A callable; raises ``TypeError`` "{name} must be callable"."""
    if not callable(value):
        raise TypeError(f"{name} must be callable, got {type(value).__name__}")
    return value


def check_sde(value: Any) -> Any:
    """A :class:`scoresde.SDE`; raises ``TypeError`` "sde must be a scoresde.SDE"."""
    from .sde import SDE  # sde.py imports this module

    if not isinstance(value, SDE):
        raise TypeError(f"sde must be a scoresde.SDE, got {type(value).__name__}")
    return value


def from_name(name: str, value: Any, table: dict[str, Callable[..., T]], base: type[T], **options: Any) -> T:
    """``value`` if it is a ``base`` object (then without options), else ``table[value](**options)``.

    Raises ``TypeError`` for options given with an object and ``ValueError`` for a name not in ``table``.
    """
    if isinstance(value, base):
        if options:
            raise TypeError(
                f"{name} options {sorted(options)} are only accepted with a {name} name; "
                f"configure the {type(value).__name__} object instead"
            )
        return value
    if isinstance(value, str) and value in table:
        return table[value](**options)
    raise ValueError(f"{name} must be one of {sorted(table)} or a {base.__name__} object, got {value!r}")


def check_choice(name: str, value: T, choices: Iterable[Any]) -> T:
    """One of ``choices``; raises ``ValueError`` "{name} must be one of [...]"."""
    choices = list(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {sorted(choices)}, got {value!r}")
    return value
