"""Shared helpers for the stats tests."""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from typing import TypeVar

from hypothesis import settings

from stats import UndefinedResultWarning

R = TypeVar("R")

# No example database (nothing written into the checkout) and no per-example deadline (the CI
# machines are noisy); the number of examples stays hypothesis' default.
PROPERTY_SETTINGS = settings(database=None, deadline=None)


def is_nan_interval(interval: tuple[float, float]) -> bool:
    """Both ends of the interval are NaN."""
    return math.isnan(interval[0]) and math.isnan(interval[1])


def call_recording(function: Callable[..., R], **kwargs: object) -> R:
    """Call ``function``; it may warn only with UndefinedResultWarning, exactly when the result
    has a reason, and the warning's text is that reason."""
    with warnings.catch_warnings(record=True) as record:
        warnings.simplefilter("always")
        result = function(**kwargs)
    assert all(issubclass(w.category, UndefinedResultWarning) for w in record), [
        str(w.message) for w in record
    ]
    reason = getattr(result, "reason", None)
    assert bool(record) == (reason is not None)
    if record:
        assert str(record[0].message) == reason
    return result
