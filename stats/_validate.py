"""Argument checks shared by the public functions.

Each helper either returns the value converted to a plain Python type or raises
:class:`~stats.errors.InvalidInputError` with a message of the form
``"<name> must be <allowed>, got <value>"``.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable

from stats.errors import InvalidInputError

__all__ = [
    "check_confidence_level",
    "check_count",
    "check_finite",
    "check_open_unit",
    "check_probability",
    "check_sequence",
]


def check_count(name: str, value: object, *, minimum: int = 0) -> int:
    """Return ``value`` as an ``int`` if it is an integer of at least ``minimum``.

    A float with an integral value (``300.0``, as a warehouse ``SUM`` returns it) counts as
    that integer; ``300.5`` does not.
    """
    if (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool | numbers.Integral)
        and math.isfinite(float(value))
        and float(value).is_integer()
    ):
        value = int(float(value))
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise InvalidInputError(
            f"{name} must be an integer >= {minimum}, got {value!r} ({type(value).__name__})"
        )
    count = int(value)
    if count < minimum:
        raise InvalidInputError(f"{name} must be an integer >= {minimum}, got {count}")
    return count


def check_finite(name: str, value: object) -> float:
    """Return ``value`` as a ``float`` if it is a finite real number."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidInputError(
            f"{name} must be a finite real number, got {value!r} ({type(value).__name__})"
        )
    number = float(value)
    if not math.isfinite(number):
        raise InvalidInputError(f"{name} must be a finite real number, got {number}")
    return number


def check_open_unit(name: str, value: object) -> float:
    """Return ``value`` as a ``float`` if it lies in the open interval (0, 1)."""
    number = check_finite(name, value)
    if not 0.0 < number < 1.0:
        raise InvalidInputError(f"{name} must be in (0, 1), got {number}")
    return number


def check_confidence_level(value: object) -> float:
    """Return a confidence level in (0, 1)."""
    return check_open_unit("confidence_level", value)


def check_probability(name: str, value: object) -> float:
    """Return ``value`` as a ``float`` if it is NaN or lies in [0, 1]."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise InvalidInputError(
            f"{name} must be a number in [0, 1] or NaN, got {value!r} ({type(value).__name__})"
        )
    number = float(value)
    if not (math.isnan(number) or 0.0 <= number <= 1.0):
        raise InvalidInputError(f"{name} must be in [0, 1] or NaN, got {number}")
    return number


def check_sequence(name: str, value: object, *, min_length: int = 1) -> list[object]:
    """Return the items of ``value`` if it is a non-string iterable of at least ``min_length``."""
    if isinstance(value, str | bytes) or not isinstance(value, Iterable):
        raise InvalidInputError(
            f"{name} must be a sequence, got {value!r} ({type(value).__name__})"
        )
    items = list(value)
    if len(items) < min_length:
        raise InvalidInputError(f"{name} must have at least {min_length} item(s), got {len(items)}")
    return items
