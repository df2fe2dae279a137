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
from stats.bayesian import (
    JEFFREYS_PRIOR,
    UNIFORM_PRIOR,
    BetaPrior,
    chance_to_be_best,
    chance_to_beat_control,
)
from stats.breakdown import (
    BREAKDOWN_COLUMNS,
    breakdown,
    definition_caps,
    percentile_cap,
    slice_labels,
)
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
from stats.frequentist import ProportionError, compare_means, compare_proportions, compare_ratios
from stats.group_sequential import (
    GroupSequentialBoundaries,
    Spending,
    group_sequential,
    group_sequential_boundaries,
)
from stats.multiple_testing import AdjustmentMethod, adjust_pvalues
from stats.power import PowerKind, days_remaining, minimum_detectable_effect, sample_size
from stats.results import (
    BayesianResult,
    BestResult,
    ComparisonResult,
    CupedResult,
    GroupSequentialResult,
    SequentialResult,
    SRMResult,
    StreamResult,
)
from stats.sequential import DEFAULT_TUNING_VISITORS, LiftKind, msprt, msprt_stream
from stats.srm import srm_test
from stats.summaries import (
    CupedSummary,
    Estimate,
    MeanSummary,
    Proportion,
    RatioSummary,
    Summary,
)
from stats.tables import COMPARISON_COLUMNS, compare_frame, compare_summaries

__all__ = [
    "AGGREGATE_COLUMNS",
    "BREAKDOWN_COLUMNS",
    "COMPARISON_COLUMNS",
    "DEFAULT_TUNING_VISITORS",
    "JEFFREYS_PRIOR",
    "MEAN_COLUMNS",
    "PRE_EXPOSURE_SUFFIX",
    "RATIO_COLUMNS",
    "UNIFORM_PRIOR",
    "AdjustmentMethod",
    "BayesianResult",
    "BestResult",
    "BetaPrior",
    "ComparisonResult",
    "CupedResult",
    "CupedSummary",
    "Estimate",
    "GroupSequentialBoundaries",
    "GroupSequentialResult",
    "IncompleteLogWarning",
    "InvalidInputError",
    "LiftKind",
    "MeanSummary",
    "Metric",
    "MetricKind",
    "PeriodWeightedResult",
    "PowerKind",
    "Proportion",
    "ProportionError",
    "RatioSummary",
    "SRMResult",
    "SequentialResult",
    "Spending",
    "StatsError",
    "StreamResult",
    "Summary",
    "UndefinedResultWarning",
    "adjust_pvalues",
    "best_variant_shares",
    "breakdown",
    "chance_to_be_best",
    "chance_to_beat_control",
    "compare_frame",
    "compare_means",
    "compare_proportions",
    "compare_ratios",
    "compare_summaries",
    "cuped",
    "days_remaining",
    "definition_caps",
    "definition_metrics",
    "expand_attributes",
    "group_sequential",
    "group_sequential_boundaries",
    "minimum_detectable_effect",
    "msprt",
    "msprt_stream",
    "percentile_cap",
    "period_weighted_comparison",
    "sample_size",
    "slice_labels",
    "srm_test",
    "summarise_aggregates",
    "summarise_visitors",
    "thompson_weights",
    "visitor_rows",
]
