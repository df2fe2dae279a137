"""Abacus statistics: pure functions from per-variant summaries to typed results.

Everything takes small frozen summaries (:class:`Proportion`, :class:`MeanSummary`,
:class:`RatioSummary`, :class:`CupedSummary`) by keyword and returns frozen ``...Result``
dataclasses; nothing here touches Redis, the web stack or the clock, so a data scientist can use
it directly in a notebook. Conventions, formulas and references are in ``docs/statistics.md``:
two-sided tests at alpha 0.05, absolute lift = treatment - control, relative lift =
treatment / control - 1; undefined quantities are NaN (or None) with a ``reason`` and an
:class:`UndefinedResultWarning`; invalid input raises :class:`InvalidInputError`, a
``ValueError``.
"""

from stats.bandit import (
    PeriodWeightedResult,
    best_variant_shares,
    period_weighted_comparison,
    thompson_weights,
)
from stats.bayesian import chance_to_be_best, chance_to_beat_control
from stats.cuped import cuped
from stats.errors import (
    IncompleteLogWarning,
    InvalidInputError,
    StatsError,
    UndefinedResultWarning,
)
from stats.frames import (
    AGGREGATE_COLUMNS,
    MEAN_COLUMNS,
    PRE_EXPOSURE_SUFFIX,
    RATIO_COLUMNS,
    Metric,
    MetricKind,
    definition_metrics,
    expand_attributes,
    summarise_aggregates,
    summarise_visitors,
    visitor_rows,
)
from stats.frequentist import compare_means, compare_proportions, compare_ratios
from stats.multiple_testing import AdjustmentMethod, adjust_pvalues
from stats.power import PowerKind, days_remaining, minimum_detectable_effect, sample_size
from stats.results import (
    BayesianResult,
    ComparisonResult,
    CupedResult,
    SequentialResult,
    SRMResult,
)
from stats.sequential import DEFAULT_TUNING_VISITORS, msprt
from stats.srm import srm_test
from stats.summaries import CupedSummary, MeanSummary, Proportion, RatioSummary, Summary
from stats.tables import COMPARISON_COLUMNS, compare_frame, compare_summaries

__all__ = [
    "AGGREGATE_COLUMNS",
    "COMPARISON_COLUMNS",
    "DEFAULT_TUNING_VISITORS",
    "MEAN_COLUMNS",
    "PRE_EXPOSURE_SUFFIX",
    "RATIO_COLUMNS",
    "AdjustmentMethod",
    "BayesianResult",
    "ComparisonResult",
    "CupedResult",
    "CupedSummary",
    "IncompleteLogWarning",
    "InvalidInputError",
    "MeanSummary",
    "Metric",
    "MetricKind",
    "PeriodWeightedResult",
    "PowerKind",
    "Proportion",
    "RatioSummary",
    "SRMResult",
    "SequentialResult",
    "StatsError",
    "Summary",
    "UndefinedResultWarning",
    "adjust_pvalues",
    "best_variant_shares",
    "chance_to_be_best",
    "chance_to_beat_control",
    "compare_frame",
    "compare_means",
    "compare_proportions",
    "compare_ratios",
    "compare_summaries",
    "cuped",
    "days_remaining",
    "definition_metrics",
    "expand_attributes",
    "minimum_detectable_effect",
    "msprt",
    "period_weighted_comparison",
    "sample_size",
    "srm_test",
    "summarise_aggregates",
    "summarise_visitors",
    "thompson_weights",
    "visitor_rows",
]
