"""Checks of user arguments, written once: the package's constructors and front ends validate through these.

Messages name the argument and what it accepts (``ValueError``), so a test can match them; a bool is never taken
for an integer.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable
from typing import Any, TypeVar

import torch

from ._utils import check_finite

T = TypeVar("T")

__all__ = [
    "is_int",
    "is_real",
    "check_int",
    "check_count",
    "check_positive",
    "check_number",
    "check_bool",
    "check_choice",
    "check_finite",
    "check_callable",
    "check_generator",
    "check_sde",
    "from_name",
]


def is_int(value: Any) -> bool:
    """True for a Python integer that is not a bool."""
    return isinstance(value, int) and not isinstance(value, bool)


def is_real(value: Any) -> bool:
    """True for a Python int or float that is not a bool."""
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def check_int(name: str, value: Any, minimum: int = 1, *, or_none: bool = False) -> Any:
    """An integer >= ``minimum`` (not a bool), or None where ``or_none``; raises ``ValueError``
    "{name} must be an integer >= {minimum}" (with "or None" where None is accepted)."""
    if or_none and value is None:
        return None
    if not is_int(value) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}{' or None' if or_none else ''}, got {value!r}")
    return value


def check_count(name: str, value: Any) -> int:
    """A count: an integer >= 1 (not a bool)."""
    return check_int(name, value, 1)


def check_positive(name: str, value: Any, *, or_none: bool = False) -> Any:
    """A positive finite number (not a bool), returned as a float, or None where ``or_none``; raises
    ``ValueError`` "{name} must be a positive finite number" (with "or None" where None is accepted)."""
    if or_none and value is None:
        return None
    if not is_real(value) or not (math.isfinite(value) and value > 0):
        raise ValueError(f"{name} must be a positive finite number{' or None' if or_none else ''}, got {value!r}")
    return float(value)


def check_number(name: str, value: Any, low: float, high: float, bounds: str = "[]") -> float:
    """A real number (not a bool) in the interval from ``low`` to ``high``, returned as a float.

    ``bounds`` names the interval's ends as in its written form: "[]" closed, "()" open, "[)" or "(]" half-open.
    Raises ``ValueError`` "{name} must be a number in [low, high]" (written with ``bounds``).
    """
    inside = is_real(value) and (low <= value if bounds[0] == "[" else low < value)
    if not (inside and (value <= high if bounds[1] == "]" else value < high)):
        raise ValueError(f"{name} must be a number in {bounds[0]}{low}, {high}{bounds[1]}, got {value!r}")
    return float(value)


def check_bool(name: str, value: Any) -> bool:
    """True or False; raises ``TypeError`` "{name} must be a bool"."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, got {type(value).__name__}")
    return value


def check_generator(generator: Any, device: Any, what: str) -> None:
    """A random generator (or None) on the device type of ``what``, which lives on ``device``; raises ``ValueError``
    "generator is on {generator.device} but {what} is on {device}"."""
    if generator is not None and generator.device.type != torch.device(device).type:
        raise ValueError(f"generator is on {generator.device} but {what} is on {device}")


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
