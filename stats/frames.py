"""DataFrame input for notebooks: per-visitor rows or warehouse aggregates into summaries.

Two kinds of input are accepted. Per-visitor rows (one row per visitor: the variant, one column
per metric value, optionally a pre-period covariate) are reduced to the per-variant summaries by
:func:`summarise_visitors`. Per-variant aggregates (one row per variant and metric with ``n``,
``sum``, ``sum_squares``, as a warehouse ``GROUP BY`` or the service's summary export returns
them) are read by :func:`summarise_aggregates`. :mod:`stats.tables` turns the summaries into a
tidy comparison table. pandas is imported inside the functions so ``import stats`` does not
need it.
"""

from __future__ import annotations

import decimal
import math
import numbers
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from stats._validate import check_count
from stats.errors import InvalidInputError
from stats.summaries import CupedSummary, MeanSummary, Proportion, RatioSummary, Summary

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["Metric", "MetricKind", "summarise_aggregates", "summarise_visitors"]

MetricKind = Literal["conversion", "mean", "count", "ratio"]
_KINDS = ("conversion", "mean", "count", "ratio")
_RATIO_FIELDS = (
    "numerator_sum",
    "numerator_sum_squares",
    "denominator_sum",
    "denominator_sum_squares",
    "cross_sum",
)
_CUPED_FIELDS = ("covariate_sum", "covariate_sum_squares", "cross_sum")


@dataclass(frozen=True)
class Metric:
    """How to read one metric from per-visitor rows.

    Parameters
    ----------
    name : str
        Metric name in the results.
    kind : {"conversion", "mean", "count", "ratio"}
        ``conversion``: a visitor converts when their value is above 0; ``mean`` and ``count``:
        the per-visitor value is averaged (counts must be >= 0); ``ratio``: sum of
        ``numerator`` over sum of ``denominator``.
    column : str, optional
        Column of per-visitor values (default: ``name``); not used for ratios.
    numerator, denominator : str, optional
        Columns of a ratio metric, required for ``kind="ratio"`` only.
    covariate : str, optional
        Pre-period column of the same visitors; when given the metric is CUPED-adjusted.
    """

    name: str
    kind: MetricKind
    column: str | None = None
    numerator: str | None = None
    denominator: str | None = None
    covariate: str | None = None

    def __post_init__(self) -> None:
        if self.kind not in _KINDS:
            raise InvalidInputError(f"kind must be one of {_KINDS}, got {self.kind!r}")
        is_ratio = self.kind == "ratio"
        if is_ratio and (self.numerator is None or self.denominator is None):
            raise InvalidInputError(
                f"metric {self.name!r}: numerator and denominator are required for a ratio"
            )
        if not is_ratio and (self.numerator is not None or self.denominator is not None):
            raise InvalidInputError(
                f"metric {self.name!r}: numerator and denominator are only for kind='ratio', "
                f"got kind={self.kind!r}"
            )
        if is_ratio and (self.covariate is not None or self.column is not None):
            raise InvalidInputError(
                f"metric {self.name!r}: a ratio takes numerator and denominator, not column or "
                "covariate (CUPED is not implemented for ratio metrics)"
            )

    @property
    def value_column(self) -> str:
        """The column holding the per-visitor value."""
        return self.column if self.column is not None else self.name


def _require_columns(frame: pd.DataFrame, names: Sequence[str], argument: str) -> None:
    missing = [name for name in names if name not in frame.columns]
    if missing:
        raise InvalidInputError(
            f"{argument}: column(s) {missing} not in frame; its columns are {list(frame.columns)}"
        )


def _numeric(frame: pd.DataFrame, column: str, metric: str) -> pd.Series:
    import pandas as pd

    series = frame[column]
    if series.dtype == bool:
        series = series.astype("float64")
    if not pd.api.types.is_numeric_dtype(series):
        raise InvalidInputError(
            f"metric {metric!r}: column {column!r} must be numeric, got dtype {series.dtype}"
        )
    series = series.astype("float64")
    missing = int(series.isna().sum())
    if missing:
        raise InvalidInputError(
            f"metric {metric!r}: column {column!r} has {missing} missing value(s); fill them "
            "(e.g. 0 for visitors without events) before summarising"
        )
    return series


def _variant_keys(frame: pd.DataFrame, variant_column: str) -> pd.Series:
    _require_columns(frame, [variant_column], "variant_column")
    variants = frame[variant_column]
    if variants.isna().any():
        raise InvalidInputError(f"column {variant_column!r} has missing variant(s)")
    return variants.astype(str)


def summarise_visitors(
    frame: pd.DataFrame, *, metrics: Sequence[Metric], variant_column: str = "variant"
) -> dict[str, dict[str, Summary]]:
    """Summarise per-visitor rows into per-variant summaries for each metric.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per visitor.
    metrics : sequence of Metric
        The metrics to summarise.
    variant_column : str, default "variant"
        Column holding the variant key (converted to ``str``).

    Returns
    -------
    dict
        ``{metric name: {variant: summary}}`` with variants in order of first appearance;
        summaries are :class:`Proportion`, :class:`MeanSummary`, :class:`RatioSummary`, or
        :class:`CupedSummary` when the metric has a covariate.
    """
    variants = _variant_keys(frame, variant_column)
    result: dict[str, dict[str, Summary]] = {}
    for metric in metrics:
        if not isinstance(metric, Metric):
            raise InvalidInputError(f"metrics must hold Metric objects, got {metric!r}")
        if metric.name in result:
            raise InvalidInputError(f"metrics must have distinct names, got {metric.name!r} twice")
        result[metric.name] = _summarise_metric(frame, variants, metric)
    return result


def _grouped_sums(variants: pd.Series, columns: Mapping[str, pd.Series]) -> pd.DataFrame:
    import pandas as pd

    table = pd.DataFrame({"_variant": variants, **columns})
    grouped = table.groupby("_variant", sort=False)
    sums = grouped.sum()
    sums["n"] = grouped.size()
    return sums


def _summarise_metric(
    frame: pd.DataFrame, variants: pd.Series, metric: Metric
) -> dict[str, Summary]:
    if metric.numerator is not None and metric.denominator is not None:  # a ratio metric
        _require_columns(frame, [metric.numerator, metric.denominator], f"metric {metric.name!r}")
        x = _numeric(frame, metric.numerator, metric.name)
        y = _numeric(frame, metric.denominator, metric.name)
        sums = _grouped_sums(
            variants,
            {
                "numerator_sum": x,
                "numerator_sum_squares": x * x,
                "denominator_sum": y,
                "denominator_sum_squares": y * y,
                "cross_sum": x * y,
            },
        )
        return {
            str(v): RatioSummary(n=int(row.n), **{f: float(row[f]) for f in _RATIO_FIELDS})
            for v, row in sums.iterrows()
        }
    columns = [metric.value_column] + ([metric.covariate] if metric.covariate else [])
    _require_columns(frame, columns, f"metric {metric.name!r}")
    values = _numeric(frame, metric.value_column, metric.name)
    if metric.kind in ("conversion", "count") and bool((values < 0).any()):
        raise InvalidInputError(
            f"metric {metric.name!r}: column {metric.value_column!r} must be >= 0 for a "
            f"{metric.kind} metric"
        )
    if metric.kind == "conversion":
        values = (values > 0).astype("float64")
    if metric.covariate is not None:
        x = _numeric(frame, metric.covariate, metric.name)
        sums = _grouped_sums(
            variants,
            {
                "sum": values,
                "sum_squares": values * values,
                "covariate_sum": x,
                "covariate_sum_squares": x * x,
                "cross_sum": values * x,
            },
        )
        return {
            str(v): CupedSummary(
                n=int(row.n),
                sum=float(row["sum"]),
                sum_squares=float(row["sum_squares"]),
                **{f: float(row[f]) for f in _CUPED_FIELDS},
            )
            for v, row in sums.iterrows()
        }
    sums = _grouped_sums(variants, {"sum": values, "sum_squares": values * values})
    if metric.kind == "conversion":
        return {
            str(v): Proportion(conversions=round(row["sum"]), visitors=int(row.n))
            for v, row in sums.iterrows()
        }
    return {
        str(v): MeanSummary(
            n=int(row.n), sum=float(row["sum"]), sum_squares=float(row["sum_squares"])
        )
        for v, row in sums.iterrows()
    }


def summarise_aggregates(
    frame: pd.DataFrame,
    *,
    kind: MetricKind | Mapping[str, MetricKind],
    variant_column: str = "variant",
    metric_column: str | None = None,
    metric_name: str = "metric",
    n_column: str = "n",
    sum_column: str = "sum",
    sum_squares_column: str = "sum_squares",
) -> dict[str, dict[str, Summary]]:
    """Read per-variant aggregate rows (as a warehouse query returns them) into summaries.

    Parameters
    ----------
    frame : pandas.DataFrame
        One row per variant (and per metric when ``metric_column`` is given), with ``n``,
        ``sum`` and ``sum_squares`` of per-visitor totals. For conversions ``sum`` is the
        number of converted visitors and ``sum_squares`` may be absent. Ratio metrics need the
        columns ``numerator_sum``, ``numerator_sum_squares``, ``denominator_sum``,
        ``denominator_sum_squares`` and ``cross_sum`` instead; a mean or count metric whose row
        also has ``covariate_sum``, ``covariate_sum_squares`` and ``cross_sum`` is read as a
        :class:`CupedSummary`.
    kind : str or mapping of str to str
        The metric kind, or ``{metric name: kind}`` when ``metric_column`` is given.
    variant_column : str, default "variant"
        Column of variant keys (converted to ``str``).
    metric_column : str, optional
        Column of metric names, for a frame holding several metrics.
    metric_name : str, default "metric"
        Name of the single metric when ``metric_column`` is None.
    n_column, sum_column, sum_squares_column : str
        Names of the aggregate columns.

    Returns
    -------
    dict
        ``{metric name: {variant: summary}}`` in row order. A variant appearing twice for the
        same metric is an error: add shards or days up before calling.
    """
    _require_columns(frame, [variant_column, n_column], "frame")
    if metric_column is not None:
        _require_columns(frame, [metric_column], "metric_column")
    result: dict[str, dict[str, Summary]] = {}
    for index, row in frame.iterrows():
        metric = str(row[metric_column]) if metric_column is not None else metric_name
        metric_kind = _kind_of(kind, metric)
        variant = str(row[variant_column])
        summaries = result.setdefault(metric, {})
        if variant in summaries:
            raise InvalidInputError(
                f"variant {variant!r} appears more than once for metric {metric!r} (row {index}); "
                "aggregate rows must be one per variant and metric: sum shards or days first"
            )
        summaries[variant] = _aggregate_summary(
            row, frame, metric, metric_kind, n_column, sum_column, sum_squares_column
        )
    return result


def _kind_of(kind: MetricKind | Mapping[str, MetricKind], metric: str) -> MetricKind:
    if isinstance(kind, str):
        chosen = kind
    elif metric in kind:
        chosen = kind[metric]
    else:
        raise InvalidInputError(f"kind has no entry for metric {metric!r}; it has {list(kind)}")
    if chosen not in _KINDS:
        raise InvalidInputError(f"kind must be one of {_KINDS}, got {chosen!r}")
    return chosen


def _present(row: pd.Series, frame: pd.DataFrame, names: Sequence[str]) -> bool:
    return all(name in frame.columns and not _is_missing(row[name]) for name in names)


def _is_missing(value: object) -> bool:
    return value is None or (isinstance(value, float) and math.isnan(value))


def _aggregate_summary(
    row: pd.Series,
    frame: pd.DataFrame,
    metric: str,
    kind: MetricKind,
    n_column: str,
    sum_column: str,
    sum_squares_column: str,
) -> Summary:
    n = check_count(f"{n_column} of metric {metric!r}", _integral(row[n_column], n_column))
    if kind == "ratio":
        _require_columns(frame, list(_RATIO_FIELDS), f"ratio metric {metric!r}")
        return RatioSummary(n=n, **{f: row[f] for f in _RATIO_FIELDS})
    _require_columns(frame, [sum_column], f"metric {metric!r}")
    if kind == "conversion":
        conversions = _integral(row[sum_column], sum_column)
        if _present(row, frame, [sum_squares_column]) and float(row[sum_squares_column]) != float(
            conversions
        ):
            raise InvalidInputError(
                f"metric {metric!r}: {sum_squares_column} must equal {sum_column} for a "
                f"conversion metric (0/1 per visitor), got {row[sum_squares_column]} and "
                f"{conversions}"
            )
        return Proportion(conversions=conversions, visitors=n)
    _require_columns(frame, [sum_squares_column], f"metric {metric!r}")
    if _present(row, frame, _CUPED_FIELDS):
        return CupedSummary(
            n=n,
            sum=row[sum_column],
            sum_squares=row[sum_squares_column],
            **{f: row[f] for f in _CUPED_FIELDS},
        )
    return MeanSummary(n=n, sum=row[sum_column], sum_squares=row[sum_squares_column])


def _integral(value: object, column: str) -> int:
    """Whole numbers (SQL SUM often returns floats or decimals) as ``int``; else an error."""
    if isinstance(value, numbers.Integral) and not isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Real | decimal.Decimal) and float(value).is_integer():
        return int(float(value))
    raise InvalidInputError(f"{column} must be a whole number, got {value!r}")
