"""DataFrame input for notebooks: raw events, per-visitor rows or aggregates into summaries.

Three kinds of input are accepted. A raw event log (one row per exposure, credited event and
pre-exposure event, as the service's events export returns it) becomes per-visitor rows with
:func:`visitor_rows`, given the experiment's metrics (:func:`definition_metrics` reads them from
the definition JSON). Per-visitor rows (one row per visitor: the variant, one column per metric
value, optionally a pre-period covariate) are reduced to the per-variant summaries by
:func:`summarise_visitors`. Per-variant aggregates (one row per variant and metric with ``n``,
``sum``, ``sum_squares``, as a warehouse ``GROUP BY`` or the service's summary export returns
them) are read by :func:`summarise_aggregates`. :mod:`stats.tables` turns the summaries into a
tidy comparison table. pandas is imported inside the functions so ``import stats`` does not
need it.
"""

from __future__ import annotations

import decimal
import json
import math
import numbers
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, cast

from stats._validate import check_count
from stats.errors import IncompleteLogWarning, InvalidInputError
from stats.summaries import CupedSummary, MeanSummary, Proportion, RatioSummary, Summary

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "AGGREGATE_COLUMNS",
    "MEAN_COLUMNS",
    "PRE_EXPOSURE_SUFFIX",
    "RATIO_COLUMNS",
    "Metric",
    "MetricKind",
    "definition_metrics",
    "expand_attributes",
    "summarise_aggregates",
    "summarise_visitors",
    "visitor_rows",
]

MetricKind = Literal["conversion", "mean", "count", "ratio"]
_KINDS = ("conversion", "mean", "count", "ratio")
MEAN_COLUMNS = ("sum", "sum_squares")
"""Aggregate columns of a conversion, mean or count metric (besides ``n``)."""
RATIO_COLUMNS = (
    "numerator_sum",
    "numerator_sum_squares",
    "denominator_sum",
    "denominator_sum_squares",
    "cross_sum",
)
"""Aggregate columns of a ratio metric (besides ``n``)."""
AGGREGATE_COLUMNS = ("n", *MEAN_COLUMNS, *RATIO_COLUMNS)
"""Every aggregate column :func:`summarise_aggregates` reads by default, in the order the
service's summary export writes them."""
_RATIO_FIELDS = RATIO_COLUMNS
_CUPED_FIELDS = ("covariate_sum", "covariate_sum_squares", "cross_sum")
PRE_EXPOSURE_SUFFIX = "_pre"
"""Suffix of the per-visitor columns :func:`visitor_rows` fills from pre-exposure events."""


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
    event : str, optional
        The event the metric reads in a raw event log (for :func:`visitor_rows`); not used
        for ratios.
    """

    name: str
    kind: MetricKind
    column: str | None = None
    numerator: str | None = None
    denominator: str | None = None
    covariate: str | None = None
    event: str | None = None

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
        if is_ratio and self.event is not None:
            raise InvalidInputError(
                f"metric {self.name!r}: a ratio reads its numerator and denominator metrics, "
                f"not an event, got event={self.event!r}"
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
    kind: MetricKind | Mapping[str, MetricKind] | None = None,
    kind_column: str = "kind",
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
    kind : str or mapping of str to str, optional
        The metric kind, or ``{metric name: kind}`` when ``metric_column`` is given; when None
        (the default) each row's kind is read from ``kind_column``, as the service's summary
        export provides it.
    kind_column : str, default "kind"
        Column of metric kinds, used when ``kind`` is None.
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
    if kind is None:
        _require_columns(frame, [kind_column], "kind_column (kind=None reads kinds from it)")
    result: dict[str, dict[str, Summary]] = {}
    for index, row in frame.iterrows():
        metric = str(row[metric_column]) if metric_column is not None else metric_name
        metric_kind = _kind_of(str(row[kind_column]) if kind is None else kind, metric)
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


def _kind_of(kind: str | Mapping[str, MetricKind], metric: str) -> MetricKind:
    chosen: str
    if isinstance(kind, str):
        chosen = kind
    elif metric in kind:
        chosen = kind[metric]
    else:
        raise InvalidInputError(f"kind has no entry for metric {metric!r}; it has {list(kind)}")
    if chosen not in _KINDS:
        raise InvalidInputError(f"kind must be one of {_KINDS}, got {chosen!r}")
    return cast("MetricKind", chosen)


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


def definition_metrics(
    metrics: Sequence[Mapping[str, object]], *, cuped: bool = False
) -> list[Metric]:
    """The metrics of an experiment definition, as the service's JSON lists them.

    Parameters
    ----------
    metrics : sequence of mappings
        ``definition["metrics"]``: each with ``name``, ``kind`` and ``event``, or for a ratio
        ``numerator`` and ``denominator`` naming two other metrics (other keys are ignored).
    cuped : bool, default False
        Give every non-ratio metric the covariate ``NAME_pre`` that :func:`visitor_rows`
        fills from the visitor's events before exposure, so that the comparison is
        CUPED-adjusted. Ratios stay unadjusted (CUPED is not implemented for ratios).

    Returns
    -------
    list of Metric
        Per-visitor columns named after the metrics, as :func:`visitor_rows` builds them.

    Examples
    --------
    >>> definition_metrics(
    ...     [{"name": "orders", "kind": "count", "event": "purchase", "primary": True}], cuped=True
    ... )
    [Metric(name='orders', kind='count', column=None, numerator=None, denominator=None, \
covariate='orders_pre', event='purchase')]
    """
    out: list[Metric] = []
    for position, raw in enumerate(metrics):
        if not isinstance(raw, Mapping) or "name" not in raw or "kind" not in raw:
            raise InvalidInputError(
                f"metrics[{position}] must be a mapping with 'name' and 'kind', got {raw!r}"
            )
        name, kind = str(raw["name"]), str(raw["kind"])
        if kind not in _KINDS:
            raise InvalidInputError(
                f"metrics[{position}].kind must be one of {_KINDS}, got {kind!r}"
            )
        if kind == "ratio":
            out.append(
                Metric(
                    name,
                    kind="ratio",
                    numerator=_optional_text(raw.get("numerator")),
                    denominator=_optional_text(raw.get("denominator")),
                )
            )
            continue
        event = _optional_text(raw.get("event"))
        if event is None:
            raise InvalidInputError(f"metrics[{position}] ({name!r}) needs an 'event'")
        covariate = name + PRE_EXPOSURE_SUFFIX if cuped else None
        out.append(Metric(name, kind=cast("MetricKind", kind), covariate=covariate, event=event))
    return out


def _optional_text(value: object) -> str | None:
    return None if value is None else str(value)


_EVENT_LOG_COLUMNS = ("type", "visitor_id", "variant", "timestamp")


def visitor_rows(
    events: pd.DataFrame,
    *,
    metrics: Sequence[Metric],
    attributes: Sequence[str] = (),
    lookback_days: float | None = None,
) -> pd.DataFrame:
    """Per-visitor rows from a raw event log: one row per exposed visitor, one column per metric.

    A metric's value for a visitor is computed as the service computes it from the events
    credited to that visitor (those after the exposure): ``conversion`` 1 if the visitor has
    at least one event, else 0; ``mean`` the sum of the event values; ``count`` the number of
    events. Ratio metrics need no column of their own (they read their two parts). Every
    non-ratio metric also gets ``NAME_pre``, the same quantity over the visitor's events from
    before the exposure (rows of type ``pre_exposure``): the CUPED covariate, 0 when the log
    has no earlier activity for the visitor.

    Parameters
    ----------
    events : pandas.DataFrame
        The events export: columns ``type`` (``exposure``, ``event``, ``pre_exposure``),
        ``visitor_id``, ``variant``, ``timestamp`` (datetimes, or ISO 8601 text), ``event``,
        ``value`` and, for ``attributes``, ``attributes`` (JSON text or dicts).
    metrics : sequence of Metric
        Metrics with their ``event`` (see :func:`definition_metrics`).
    attributes : sequence of str, default ()
        Attributes given at assignment to copy into columns of the same name (missing: NA),
        e.g. ``["device"]`` for a segment breakdown.
    lookback_days : float, optional
        Count only pre-exposure events at most this many days before the exposure (default:
        all the log holds).

    Returns
    -------
    pandas.DataFrame
        ``visitor_id``, ``variant``, ``exposed_at``, the attribute columns, then one column
        per non-ratio metric and one ``NAME_pre`` each; ordered by exposure time.

    Warns
    -----
    IncompleteLogWarning
        When credited events belong to visitors with no exposure row: the log lost its oldest
        entries to its cap, so the rows cannot match the service's aggregates.

    Examples
    --------
    >>> import pandas as pd
    >>> log = pd.DataFrame({
    ...     "type": ["exposure", "exposure", "event", "event", "pre_exposure"],
    ...     "visitor_id": ["a", "b", "a", "a", "b"],
    ...     "variant": ["control", "filters", "control", "control", "filters"],
    ...     "timestamp": pd.to_datetime([2, 3, 4, 5, 1], unit="D", utc=True),
    ...     "event": [None, None, "purchase", "purchase", "purchase"],
    ...     "value": [None, None, 10.0, 5.5, 20.0],
    ... })
    >>> metrics = [Metric("revenue", kind="mean", event="purchase")]
    >>> rows = visitor_rows(log, metrics=metrics)
    >>> print(rows[["visitor_id", "variant", "revenue", "revenue_pre"]].to_string(index=False))
    visitor_id variant  revenue  revenue_pre
             a control     15.5          0.0
             b filters      0.0         20.0
    """
    import pandas as pd

    _require_columns(events, list(_EVENT_LOG_COLUMNS), "events")
    readable = [m for m in metrics if m.kind != "ratio"]
    _check_log_metrics(metrics, readable)
    if readable:
        _require_columns(events, ["event", "value"], "events")
    if attributes:
        _require_columns(events, ["attributes"], "events (for attributes)")
    if lookback_days is not None and not (
        isinstance(lookback_days, numbers.Real) and lookback_days >= 0
    ):
        raise InvalidInputError(f"lookback_days must be a number >= 0, got {lookback_days!r}")
    kinds = events["type"].astype(str)
    exposures = events.loc[kinds == "exposure"]
    duplicated = exposures["visitor_id"].duplicated()
    if bool(duplicated.any()):
        raise InvalidInputError(
            f"events has {int(duplicated.sum())} visitor(s) with more than one exposure row, "
            f"e.g. {exposures['visitor_id'][duplicated].iloc[0]!r}; a visitor is exposed once "
            "per experiment: pass one experiment's log, without repeated rows"
        )
    rows = pd.DataFrame(
        {
            "visitor_id": exposures["visitor_id"].astype(str).to_numpy(),
            "variant": exposures["variant"].astype(str).to_numpy(),
            "exposed_at": _datetimes(exposures["timestamp"]).reset_index(drop=True),
        }
    )
    for name in attributes:
        if name in rows.columns or any(
            name in (m.name, m.name + PRE_EXPOSURE_SUFFIX) for m in readable
        ):
            raise InvalidInputError(
                f"attributes: {name!r} would clash with a column of the same name"
            )
        rows[name] = [_attribute(raw, name) for raw in exposures["attributes"]]
    credited = events.loc[kinds == "event"]
    unexposed = ~credited["visitor_id"].astype(str).isin(rows["visitor_id"])
    if bool(unexposed.any()):
        warnings.warn(
            f"{int(unexposed.sum())} credited event(s) belong to visitors with no exposure row "
            "(the log lost its oldest entries to its cap?); they are left out, so these rows "
            "will not match the service's aggregates",
            IncompleteLogWarning,
            stacklevel=2,
        )
    before = _pre_exposure(events.loc[kinds == "pre_exposure"], rows, lookback_days)
    for suffix, source in (("", credited), (PRE_EXPOSURE_SUFFIX, before)):
        per_event = _per_visitor_event(source)
        for metric in readable:
            rows[metric.name + suffix] = _metric_values(metric, per_event, rows["visitor_id"])
    return rows.sort_values(["exposed_at", "visitor_id"], kind="stable").reset_index(drop=True)


def _check_log_metrics(metrics: Sequence[Metric], readable: Sequence[Metric]) -> None:
    for metric in metrics:
        if not isinstance(metric, Metric):
            raise InvalidInputError(f"metrics must hold Metric objects, got {metric!r}")
    for metric in readable:
        if metric.event is None:
            raise InvalidInputError(
                f"metric {metric.name!r} has no event to read from the log; build the metrics "
                "with definition_metrics(definition['metrics'])"
            )
    names = {m.name for m in readable}
    for metric in metrics:
        if metric.kind == "ratio":
            missing = [p for p in (metric.numerator, metric.denominator) if p not in names]
            if missing:
                raise InvalidInputError(
                    f"ratio metric {metric.name!r} reads {missing}, which are not metrics in "
                    f"the list; it has {sorted(names)}"
                )


def _datetimes(values: pd.Series) -> pd.Series:
    import pandas as pd

    if isinstance(values.dtype, pd.DatetimeTZDtype):
        return values
    return pd.to_datetime(values, utc=True, format="ISO8601")


def _attribute(raw: object, name: str) -> object:
    import pandas as pd

    value = _attribute_object(raw).get(name)
    return pd.NA if value is None else value


def expand_attributes(
    events: pd.DataFrame, *, column: str = "attributes", prefix: str = ""
) -> pd.DataFrame:
    """``events`` with its column of attribute JSON replaced by one column per attribute.

    Each key found in any row becomes a column named ``prefix + key`` (missing where a row
    lacks it), in key order where ``column`` was; pandas infers each column's type.

    Parameters
    ----------
    events : pandas.DataFrame
        A frame with ``column`` holding JSON objects as text (or dicts), or empty/None.
    column : str, default "attributes"
        The column to expand.
    prefix : str, default ""
        Put before every new column's name; a key that would clash with another column is an
        error, and a prefix such as ``"attr_"`` avoids it.

    Examples
    --------
    >>> import pandas as pd
    >>> log = pd.DataFrame({
    ...     "visitor_id": ["a", "b", "c"],
    ...     "attributes": ['{"device": "mobile", "age": 31}', '{"device": "tablet"}', None],
    ... })
    >>> print(expand_attributes(log).to_string(index=False))
    visitor_id  age device
             a 31.0 mobile
             b  NaN tablet
             c  NaN    NaN
    """
    import pandas as pd

    _require_columns(events, [column], "events")
    parsed = [_attribute_object(raw) for raw in events[column]]
    keys = sorted({key for item in parsed for key in item})
    clashes = [prefix + k for k in keys if prefix + k in events.columns and prefix + k != column]
    if clashes:
        raise InvalidInputError(
            f"attributes {clashes} clash with columns of the same name; pass a prefix"
        )
    expanded = pd.DataFrame.from_records(
        [[item.get(k) for k in keys] for item in parsed],
        columns=[prefix + k for k in keys],
        index=events.index,
    ).infer_objects()
    where = list(events.columns).index(column)
    before, after = events.iloc[:, :where], events.iloc[:, where + 1 :]
    return pd.concat([before, expanded, after], axis=1)


def _attribute_object(raw: object) -> Mapping[str, object]:
    if isinstance(raw, str) and raw:
        parsed = json.loads(raw)
    elif isinstance(raw, Mapping):
        parsed = raw
    else:
        return {}
    if not isinstance(parsed, Mapping):
        raise InvalidInputError(f"attributes must hold JSON objects, got {raw!r}")
    return parsed


def _pre_exposure(before: pd.DataFrame, rows: pd.DataFrame, lookback_days: float | None) -> Any:
    """The pre-exposure events that happened before their visitor's exposure (and window)."""
    import pandas as pd

    if before.empty:
        return before
    exposed_at = pd.Series(rows["exposed_at"].to_numpy(), index=rows["visitor_id"].to_numpy())
    at = _datetimes(before["timestamp"])
    exposure = before["visitor_id"].astype(str).map(exposed_at)
    keep = at < exposure  # visitors without an exposure row compare as NaT: False
    if lookback_days is not None:
        keep &= at >= exposure - pd.Timedelta(days=float(lookback_days))
    return before.loc[keep.to_numpy(dtype=bool)]


def _per_visitor_event(source: pd.DataFrame) -> pd.DataFrame:
    """Per (visitor, event): the number of events and the sum of their values."""
    import pandas as pd

    if source.empty:
        index = pd.MultiIndex.from_arrays([[], []], names=["visitor_id", "event"])
        return pd.DataFrame({"count": [], "total": []}, index=index)
    table = pd.DataFrame(
        {
            "visitor_id": source["visitor_id"].astype(str).to_numpy(),
            "event": source["event"].astype(str).to_numpy(),
            "value": pd.to_numeric(source["value"]).fillna(0.0).to_numpy(dtype="float64"),
        }
    )
    grouped = table.groupby(["visitor_id", "event"], sort=False)["value"]
    return pd.DataFrame({"count": grouped.size(), "total": grouped.sum()})


def _metric_values(metric: Metric, per_event: pd.DataFrame, visitors: pd.Series) -> Any:
    if metric.event in per_event.index.get_level_values("event"):
        of_event = per_event.xs(metric.event, level="event")
        count = visitors.map(of_event["count"]).fillna(0).astype("int64")
        total = visitors.map(of_event["total"]).fillna(0.0).astype("float64")
    else:
        count = visitors.map(lambda _: 0).astype("int64")
        total = count.astype("float64")
    if metric.kind == "conversion":
        return (count > 0).astype("int64").to_numpy()
    if metric.kind == "mean":
        return total.to_numpy()
    return count.to_numpy()
