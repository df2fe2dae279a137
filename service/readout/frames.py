"""The typed read-out as tidy pandas DataFrames, for notebooks.

:func:`results_frame` gives one row per metric and variant (the control's comparison columns
are empty), intervals split into ``_low`` and ``_high`` columns; :func:`series_frame` one row per
metric, variant and UTC day of the cumulative comparison with its confidence sequence. Both read
an :class:`~service.readout.model.ExperimentResults` and nothing else, so they agree with the
report to the last digit. pandas is imported inside the functions.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from service.readout.model import ExperimentResults, Interval

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["RESULT_COLUMNS", "SERIES_COLUMNS", "results_frame", "series_frame"]

RESULT_COLUMNS = (
    "experiment",
    "metric",
    "kind",
    "primary",
    "variant",
    "is_control",
    "visitors",
    "total",
    "value",
    "absolute_lift",
    "absolute_ci_low",
    "absolute_ci_high",
    "relative_lift",
    "relative_ci_low",
    "relative_ci_high",
    "statistic",
    "pvalue",
    "pvalue_adjusted",
    "significant",
    "chance_to_beat_control",
    "expected_loss",
    "sequential_pvalue",
    "method",
    "verdict",
)
"""Columns of :func:`results_frame`, in order."""
_NUMBERS = tuple(c for c in RESULT_COLUMNS[7:] if c not in ("significant", "method", "verdict"))

SERIES_COLUMNS = (
    "experiment",
    "metric",
    "variant",
    "date",
    "relative_lift",
    "relative_cs_low",
    "relative_cs_high",
    "sequential_pvalue",
)
"""Columns of :func:`series_frame`, in order."""


def _bounds(interval: Interval | None) -> tuple[float | None, float | None]:
    return (None, None) if interval is None else interval


def results_frame(results: ExperimentResults) -> pd.DataFrame:
    """One row per metric and variant of the read-out, in the report's order.

    Undefined numbers (the control's comparison, a comparison without data) are NaN; the
    reasons stay on the typed read-out. ``verdict`` is the row's verdict kind (``None`` for
    the control).

    >>> from service.readout.frames import results_frame                   # doctest: +SKIP
    >>> results_frame(client.results("buyakilt-filters")).query("primary")  # doctest: +SKIP
    """
    import pandas as pd

    rows = []
    for metric in results.metrics:
        for index, row in enumerate(metric.variants):
            absolute_low, absolute_high = _bounds(row.absolute_ci)
            relative_low, relative_high = _bounds(row.relative_ci)
            rows.append(
                (
                    results.experiment,
                    metric.name,
                    metric.kind,
                    metric.primary,
                    row.variant,
                    index == 0,
                    row.visitors,
                    row.total,
                    row.value,
                    row.absolute_lift,
                    absolute_low,
                    absolute_high,
                    row.relative_lift,
                    relative_low,
                    relative_high,
                    row.statistic,
                    row.pvalue,
                    row.adjusted_pvalue,
                    row.significant,
                    row.chance_to_beat_control,
                    row.expected_loss,
                    row.sequential_pvalue,
                    row.method,
                    None if row.verdict is None else row.verdict.kind.value,
                )
            )
    frame = pd.DataFrame.from_records(rows, columns=list(RESULT_COLUMNS))
    frame[list(_NUMBERS)] = frame[list(_NUMBERS)].astype("float64")
    return frame


def series_frame(results: ExperimentResults) -> pd.DataFrame:
    """The cumulative comparison of every non-control variant, one row per UTC day.

    ``relative_cs_low`` and ``relative_cs_high`` bound the always-valid confidence sequence
    of the relative lift as of that day (NaN while undefined).
    """
    import pandas as pd

    rows = []
    for metric in results.metrics:
        for row in metric.treatments:
            for point in row.series:
                low, high = _bounds(point.relative_cs)
                rows.append(
                    (
                        results.experiment,
                        metric.name,
                        row.variant,
                        point.date,
                        point.relative_lift,
                        low,
                        high,
                        point.sequential_pvalue,
                    )
                )
    frame = pd.DataFrame.from_records(rows, columns=list(SERIES_COLUMNS))
    frame[list(SERIES_COLUMNS[4:])] = frame[list(SERIES_COLUMNS[4:])].astype("float64")
    return frame
