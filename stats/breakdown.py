"""Breakdowns from exported rows: every metric compared within each value of one attribute.

:func:`breakdown` computes from the raw event log what the service's ``?dimension=`` read-out
computes from its stored aggregates: per slice (a value of the attribute given at assignment,
the first ``max_values`` distinct values in order of exposure, then ``"other"``), every
variant against the control, with p-values Holm-adjusted across the slices of each metric and a
sample-ratio check per slice. Per-visitor totals may be capped, as the service caps them
(:func:`definition_caps` reads the caps of a definition), or at a percentile of the log
(:func:`percentile_cap`: an analysis-time choice the service does not make). pandas is
imported inside the functions so ``import stats`` does not need it.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from stats.errors import InvalidInputError
from stats.frames import Metric, summarise_visitors, visitor_rows
from stats.multiple_testing import adjust_pvalues
from stats.srm import srm_test
from stats.tables import COMPARISON_COLUMNS, compare_summaries

if TYPE_CHECKING:
    import pandas as pd

__all__ = [
    "BREAKDOWN_COLUMNS",
    "NO_VALUE",
    "OTHER_VALUE",
    "breakdown",
    "definition_caps",
    "percentile_cap",
    "slice_labels",
]

NO_VALUE = "(none)"
"""The slice of visitors who came without the attribute."""
OTHER_VALUE = "other"
"""The slice of every value after the first ``max_values``."""
BREAKDOWN_COLUMNS = ("dimension", "slice", "slice_visitors", "srm_pvalue", *COMPARISON_COLUMNS)
"""Columns of the table :func:`breakdown` returns, in order."""


def _text(value: object) -> str:
    """An attribute value as slice text: strings as they are, anything else as compact JSON."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return NO_VALUE
    try:
        import pandas as pd

        if value is pd.NA:
            return NO_VALUE
    except ImportError:  # pragma: no cover - pandas is there whenever a frame is
        pass
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def slice_labels(values: Sequence[object], *, max_values: int = 20) -> list[str]:
    """The slice of each value: itself for the first ``max_values`` distinct values (in the
    order given), :data:`OTHER_VALUE` after them; a missing value is :data:`NO_VALUE`.

    Examples
    --------
    >>> slice_labels(["mobile", "desktop", None, "mobile", "tv"], max_values=3)
    ['mobile', 'desktop', '(none)', 'mobile', 'other']
    """
    if not (isinstance(max_values, int) and max_values >= 1):
        raise InvalidInputError(f"max_values must be an integer >= 1, got {max_values!r}")
    named: dict[str, None] = {}
    out = []
    for value in values:
        text = _text(value)
        if text not in named and len(named) < max_values:
            named[text] = None
        out.append(text if text in named else OTHER_VALUE)
    return out


def definition_caps(metrics: Sequence[Mapping[str, object]]) -> dict[str, float]:
    """``{metric name: cap}`` of the capped metrics of a definition's ``metrics`` list.

    Examples
    --------
    >>> definition_caps([{"name": "revenue", "kind": "mean", "cap": 500}, {"name": "orders"}])
    {'revenue': 500.0}
    """
    caps: dict[str, float] = {}
    for raw in metrics:
        cap = raw.get("cap")
        if cap is not None:
            if not isinstance(cap, numbers.Real):
                raise InvalidInputError(
                    f"metric {raw.get('name')!r}: cap must be a number, got {cap!r}"
                )
            caps[str(raw["name"])] = float(cap)
    return caps


def percentile_cap(values: pd.Series, quantile: float = 0.99) -> float:
    """The ``quantile`` of the positive per-visitor values: a cap chosen from the data.

    An analysis-time choice: the cap depends on the data it is applied to, so it is not what
    the service stores (its caps are declared before the experiment runs). Zeros (visitors with
    no event) are left out, otherwise a cap at the 99th percentile of a 3% conversion would be 0.
    """
    if not (isinstance(quantile, numbers.Real) and 0 < quantile <= 1):
        raise InvalidInputError(f"quantile must be in (0, 1], got {quantile!r}")
    positive = values[values > 0]
    if positive.empty:
        raise InvalidInputError("values has no positive value to take a percentile of")
    return float(positive.quantile(float(quantile), interpolation="linear"))


def breakdown(
    events: pd.DataFrame,
    *,
    metrics: Sequence[Metric],
    dimension: str,
    control: str,
    weights: Mapping[str, float],
    caps: Mapping[str, float] | None = None,
    max_values: int = 20,
    confidence_level: float = 0.95,
) -> pd.DataFrame:
    """Every metric compared within each slice of ``dimension``, from the raw event log.

    Parameters
    ----------
    events : pandas.DataFrame
        The events export of one experiment (see :func:`stats.visitor_rows`), with its
        ``attributes`` column.
    metrics : sequence of Metric
        The metrics, with their events (:func:`stats.definition_metrics`).
    dimension : str
        The attribute given at assignment, such as ``"device"``.
    control : str
        The control variant's key.
    weights : mapping
        ``{variant: weight}`` as configured, for the per-slice sample-ratio check.
    caps : mapping, optional
        ``{metric name: cap}``: each visitor's total of that metric counts at most the cap
        (:func:`definition_caps` for the definition's own, :func:`percentile_cap` for one
        chosen from the data). A ratio uses the capped totals of its two parts.
    max_values : int, default 20
        The first this many distinct values (in order of exposure) get a slice each; later
        values share :data:`OTHER_VALUE`.
    confidence_level : float, default 0.95

    Returns
    -------
    pandas.DataFrame
        Columns :data:`BREAKDOWN_COLUMNS`: per slice, metric and variant (control first) the
        comparison columns of :func:`stats.compare_summaries`; ``pvalue_adjusted`` is
        Holm-adjusted over every slice and variant of the same metric, and ``significant``
        uses it. ``slice_visitors`` and ``srm_pvalue`` (chi-square against ``weights``)
        describe the slice.

    Notes
    -----
    Slices are for exploring, not for picking winners: with several slices one often looks
    better or worse by chance, and each is smaller than the experiment it comes from.
    """
    import pandas as pd

    rows = visitor_rows(events, metrics=metrics, attributes=[dimension])
    for name, cap in (caps or {}).items():
        if name not in rows.columns:
            raise InvalidInputError(f"caps: {name!r} is not a metric column; have {list(rows)}")
        if not (isinstance(cap, numbers.Real) and cap > 0):
            raise InvalidInputError(f"caps[{name!r}] must be a number > 0, got {cap!r}")
        rows[name] = rows[name].clip(upper=float(cap))
    rows["_slice"] = slice_labels(list(rows[dimension]), max_values=max_values)
    variants = list(weights)
    tables = []
    for label, part in rows.groupby("_slice", sort=False):
        table = compare_summaries(
            summarise_visitors(part, metrics=metrics),
            control=control,
            confidence_level=confidence_level,
            adjust=None,
        )
        counts = part["variant"].value_counts()
        srm = srm_test(
            visitors=[int(counts.get(v, 0)) for v in variants],
            weights=[float(weights[v]) for v in variants],
        )
        table.insert(0, "srm_pvalue", srm.pvalue)
        table.insert(0, "slice_visitors", len(part))
        table.insert(0, "slice", str(label))
        table.insert(0, "dimension", dimension)
        tables.append(table)
    if not tables:
        return pd.DataFrame(columns=list(BREAKDOWN_COLUMNS))
    out = pd.concat(tables, ignore_index=True)
    compared = out["method"].notna()
    for name in out["metric"].unique():
        mine = compared & (out["metric"] == name)
        pvalues = [float(p) for p in out.loc[mine, "pvalue"]]
        out.loc[mine, "pvalue_adjusted"] = list(adjust_pvalues(pvalues, method="holm"))
    significant = out["pvalue_adjusted"] < 1.0 - confidence_level
    out["significant"] = pd.array(significant, dtype="boolean")
    out.loc[out["pvalue_adjusted"].isna(), "significant"] = pd.NA
    return out[list(BREAKDOWN_COLUMNS)]
