"""Errors and warnings raised by the statistics package.

Invalid input (a negative count, a confidence level of 1.2, a variant missing from a frame) raises
:class:`InvalidInputError`, which is a :class:`ValueError` whose message names the argument, the
offending value and what is allowed. Valid data for which a quantity does not exist (a relative
lift against a control of zero, a test statistic when neither variant varies) gives NaN or None
and emits :class:`UndefinedResultWarning`, a :class:`RuntimeWarning`; the result object also
carries the reason as text so that a report can show it without catching warnings.
"""

from __future__ import annotations

import warnings

__all__ = [
    "IncompleteLogWarning",
    "InvalidInputError",
    "StatsError",
    "UndefinedResultWarning",
    "warn_undefined",
]


class StatsError(Exception):
    """Base class of every error raised by :mod:`stats`."""


class InvalidInputError(StatsError, ValueError):
    """An argument is outside its allowed range or of the wrong type."""


class UndefinedResultWarning(RuntimeWarning):
    """A result is undefined for valid data and is reported as NaN or None."""


class IncompleteLogWarning(UserWarning):
    """The raw log misses part of what the aggregates counted (it was trimmed by its cap).

    Raised by :func:`stats.visitor_rows` and by the service's client when an export holds fewer
    exposures than the aggregates counted.
    """


def warn_undefined(reason: str | None, *, stacklevel: int) -> None:
    """Emit :class:`UndefinedResultWarning` with ``reason`` unless it is None.

    ``stacklevel`` counts from the caller of this helper, as for :func:`warnings.warn`.
    """
    if reason is not None:
        warnings.warn(reason, UndefinedResultWarning, stacklevel=stacklevel + 1)
