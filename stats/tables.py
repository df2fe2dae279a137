"""The tidy comparison table: every metric, every variant against the control, one row each.

:func:`compare_summaries` runs the comparison that fits each metric's summaries (two-proportion
z-test, Welch's t-test, delta method for ratios, CUPED when a covariate was given), adds the
chance to beat control and a multiple-testing adjustment over the whole table, and returns a
pandas DataFrame, control first within each metric. :func:`compare_frame` does the same
straight from per-visitor rows.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from stats.bayesian import chance_to_beat_control
from stats.cuped import cuped
from stats.errors import InvalidInputError
from stats.frames import Metric, MetricKind, summarise_visitors
from stats.frequentist import compare_means, compare_proportions, compare_ratios
from stats.multiple_testing import AdjustmentMethod, adjust_pvalues
from stats.results import ComparisonResult, CupedResult
from stats.summaries import CupedSummary, MeanSummary, Proportion, RatioSummary, Summary

if TYPE_CHECKING:
    import pandas as pd

__all__ = ["COMPARISON_COLUMNS", "compare_frame", "compare_summaries"]

COMPARISON_COLUMNS = (
    "metric",
    "kind",
    "variant",
    "visitors",
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
    "variance_reduction",
    "method",
    "reason",
)
"""Columns of the table returned by :func:`compare_summaries`, in order."""


def compare_summaries(
    summaries: Mapping[str, Mapping[str, Summary]],
    *,
    control: str,
    confidence_level: float = 0.95,
    kinds: Mapping[str, MetricKind] | None = None,
    adjust: AdjustmentMethod | None = "holm",
) -> pd.DataFrame:
    """Compare every variant with the control for every metric, as a tidy DataFrame.

    Proportions use :func:`compare_proportions`, means :func:`compare_means`, ratios
    :func:`compare_ratios` and CUPED summaries :func:`cuped`; conversions and means also get
    :func:`chance_to_beat_control`.

    Parameters
    ----------
    summaries : mapping
        ``{metric name: {variant: summary}}`` as returned by :func:`summarise_visitors` or
        :func:`summarise_aggregates`.
    control : str
        The control variant's key; it must be present for every metric.
    confidence_level : float, default 0.95
        Level of the intervals.
    kinds : mapping, optional
        ``{metric name: kind}`` to label mean metrics as ``"count"``; the kind is otherwise
        taken from the summary type.
    adjust : {"holm", "bh", "bonferroni"} or None, default "holm"
        Multiple-testing adjustment over all comparisons in the table, reported in
        ``pvalue_adjusted`` (equal to ``pvalue`` when None); ``significant`` uses it and is
        missing (``<NA>``) for the control rows and wherever the p-value is undefined.

    Returns
    -------
    pandas.DataFrame
        Columns :data:`COMPARISON_COLUMNS`; one row per metric and variant, control first, its
        comparison columns empty. ``value`` is the observed rate, mean or ratio (for CUPED
        metrics the lifts are the adjusted ones).
    """
    import pandas as pd

    rows: list[dict[str, object]] = []
    for metric, by_variant in summaries.items():
        if control not in by_variant:
            raise InvalidInputError(
                f"control {control!r} is not a variant of metric {metric!r}; variants are "
                f"{list(by_variant)}"
            )
        kind = (kinds or {}).get(metric)
        control_summary = by_variant[control]
        rows.append(_control_row(metric, control, control_summary, kind))
        for variant, summary in by_variant.items():
            if variant != control:
                rows.append(
                    _comparison_row(
                        metric, variant, control_summary, summary, kind, confidence_level
                    )
                )
    table = pd.DataFrame(rows, columns=list(COMPARISON_COLUMNS))
    is_comparison = table["method"].notna()
    pvalues = [float(p) for p in table.loc[is_comparison, "pvalue"]]
    adjusted = adjust_pvalues(pvalues, method=adjust) if adjust is not None else tuple(pvalues)
    table["pvalue_adjusted"] = math.nan
    table.loc[is_comparison, "pvalue_adjusted"] = list(adjusted)
    significant = table["pvalue_adjusted"] < 1.0 - confidence_level
    table["significant"] = pd.array(significant, dtype="boolean")
    table.loc[table["pvalue_adjusted"].isna(), "significant"] = pd.NA
    return table


def _visitors_and_value(summary: Summary) -> tuple[int, float]:
    if isinstance(summary, Proportion):
        return summary.visitors, summary.rate
    if isinstance(summary, RatioSummary):
        return summary.n, summary.ratio
    if isinstance(summary, CupedSummary):
        return summary.n, summary.metric.mean
    if isinstance(summary, MeanSummary):
        return summary.n, summary.mean
    raise InvalidInputError(f"summaries must hold summary objects, got {summary!r}")


def _kind_label(summary: Summary, kind: MetricKind | None) -> str:
    if kind is not None:
        return kind
    if isinstance(summary, Proportion):
        return "conversion"
    if isinstance(summary, RatioSummary):
        return "ratio"
    return "mean"


def _control_row(
    metric: str, variant: str, summary: Summary, kind: MetricKind | None
) -> dict[str, object]:
    visitors, value = _visitors_and_value(summary)
    row: dict[str, object] = dict.fromkeys(COMPARISON_COLUMNS, math.nan)
    row.update(
        metric=metric,
        kind=_kind_label(summary, kind),
        variant=variant,
        visitors=visitors,
        value=value,
        method=None,
        reason=None,
    )
    return row


def _comparison_row(
    metric: str,
    variant: str,
    control: Summary,
    treatment: Summary,
    kind: MetricKind | None,
    confidence_level: float,
) -> dict[str, object]:
    if type(control) is not type(treatment):
        raise InvalidInputError(
            f"metric {metric!r}: variant {variant!r} has a {type(treatment).__name__} but the "
            f"control has a {type(control).__name__}"
        )
    comparison: ComparisonResult
    chance = loss = reduction = math.nan
    if isinstance(control, Proportion) and isinstance(treatment, Proportion):
        comparison = compare_proportions(
            control=control, treatment=treatment, confidence_level=confidence_level
        )
    elif isinstance(control, RatioSummary) and isinstance(treatment, RatioSummary):
        comparison = compare_ratios(
            control=control, treatment=treatment, confidence_level=confidence_level
        )
    elif isinstance(control, CupedSummary) and isinstance(treatment, CupedSummary):
        comparison = cuped(control=control, treatment=treatment, confidence_level=confidence_level)
    elif isinstance(control, MeanSummary) and isinstance(treatment, MeanSummary):
        comparison = compare_means(
            control=control, treatment=treatment, confidence_level=confidence_level
        )
    else:
        raise InvalidInputError(f"summaries must hold summary objects, got {treatment!r}")
    if isinstance(control, Proportion | MeanSummary) and isinstance(
        treatment, Proportion | MeanSummary
    ):
        bayes = chance_to_beat_control(control=control, treatment=treatment)
        chance, loss = bayes.chance_to_beat_control, bayes.expected_loss
    if isinstance(comparison, CupedResult):
        reduction = comparison.variance_reduction
    row = _control_row(metric, variant, treatment, kind)
    row.update(
        absolute_lift=comparison.absolute_lift,
        absolute_ci_low=comparison.absolute_ci[0],
        absolute_ci_high=comparison.absolute_ci[1],
        relative_lift=comparison.relative_lift,
        relative_ci_low=comparison.relative_ci[0],
        relative_ci_high=comparison.relative_ci[1],
        statistic=comparison.statistic,
        pvalue=comparison.pvalue,
        chance_to_beat_control=chance,
        expected_loss=loss,
        variance_reduction=reduction,
        method=comparison.method,
        reason=comparison.reason,
    )
    return row


def compare_frame(
    frame: pd.DataFrame,
    *,
    metrics: Sequence[Metric],
    control: str,
    variant_column: str = "variant",
    confidence_level: float = 0.95,
    adjust: AdjustmentMethod | None = "holm",
) -> pd.DataFrame:
    """Summarise per-visitor rows and compare every variant with the control.

    ``compare_summaries(summarise_visitors(frame, ...), ...)`` with the metric kinds taken from
    ``metrics``; see those two functions.

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame(
    ...     {"variant": ["a", "b"] * 4, "orders": [0, 1, 1, 2, 0, 1, 1, 1]}
    ... )
    >>> table = compare_frame(frame, metrics=[Metric("orders", kind="count")], control="a")
    >>> print(table[["variant", "visitors", "value", "absolute_lift"]].to_string(index=False))
    variant  visitors  value  absolute_lift
          a         4   0.50            NaN
          b         4   1.25           0.75
    """
    summaries = summarise_visitors(frame, metrics=metrics, variant_column=variant_column)
    return compare_summaries(
        summaries,
        control=control,
        confidence_level=confidence_level,
        kinds={metric.name: metric.kind for metric in metrics},
        adjust=adjust,
    )
