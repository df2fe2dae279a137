"""The read-out of one experiment as one frozen, typed value: what ``GET .../results`` serves.

:func:`service.readout.build.build_results` makes it once per request from the store's totals;
the report pages, the terminal tables, the client and the notebooks read its attributes. Every
model forbids unknown fields and has no defaults, so a field renamed or dropped on one side fails
validation loudly instead of reading as "missing" (or as a default) on the other.
Undefined numbers are ``None`` (with the reason in ``reasons``), never a stand-in value.

The verdict of each comparison is decided once, when the read-out is built, and carried on its
row (:attr:`VariantResult.verdict`); the experiment's verdict on :attr:`ExperimentResults.verdict`.
"""

from __future__ import annotations

from datetime import date, datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict

__all__ = [
    "BADGES",
    "BREAKDOWN_CAVEAT",
    "Breakdown",
    "DirectionName",
    "ExperimentResults",
    "GuardrailAlert",
    "Interval",
    "MetricKindName",
    "MetricResults",
    "Progress",
    "SRMCheck",
    "SeriesPoint",
    "SliceResults",
    "VariantResult",
    "Verdict",
    "VerdictKind",
]

Interval = tuple[float, float]
MetricKindName = Literal["conversion", "mean", "count", "ratio"]
DirectionName = Literal["higher", "lower"]


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class VerdictKind(StrEnum):
    WINNING = "winning"
    LOSING = "losing"
    INCONCLUSIVE = "inconclusive"
    SRM = "srm"
    NOT_ENOUGH_DATA = "not_enough_data"


BADGES: dict[VerdictKind, str] = {
    VerdictKind.WINNING: "Winning",
    VerdictKind.LOSING: "Losing",
    VerdictKind.INCONCLUSIVE: "Inconclusive",
    VerdictKind.SRM: "SRM problem",
    VerdictKind.NOT_ENOUGH_DATA: "Not enough data",
}


class Verdict(_Frozen):
    """A verdict: its kind, the one-paragraph sentence, and the variant it is about."""

    kind: VerdictKind
    sentence: str
    variant: str | None

    @property
    def badge(self) -> str:
        """The short label of the kind: "Winning", "SRM problem", ..."""
        return BADGES[self.kind]


class SeriesPoint(_Frozen):
    """The cumulative comparison at the end of one UTC day."""

    date: date
    relative_lift: float | None
    relative_cs: Interval | None
    sequential_pvalue: float | None


class VariantResult(_Frozen):
    """One variant of one metric. The control has no comparison: those fields are ``None``."""

    variant: str
    visitors: int
    total: float
    value: float | None
    absolute_lift: float | None
    absolute_ci: Interval | None
    relative_lift: float | None
    relative_ci: Interval | None
    statistic: float | None
    pvalue: float | None
    adjusted_pvalue: float | None
    significant: bool
    chance_to_beat_control: float | None
    expected_loss: float | None
    sequential_pvalue: float | None
    method: str | None
    series: tuple[SeriesPoint, ...]
    reasons: tuple[str, ...]
    verdict: Verdict | None
    """The verdict on this variant against the control (``None`` for the control itself)."""

    @classmethod
    def uncompared(
        cls, *, variant: str, visitors: int, total: float, value: float | None
    ) -> VariantResult:
        """A row with no comparison: the control's, or a variant's before it is compared."""
        return cls(
            variant=variant,
            visitors=visitors,
            total=total,
            value=value,
            absolute_lift=None,
            absolute_ci=None,
            relative_lift=None,
            relative_ci=None,
            statistic=None,
            pvalue=None,
            adjusted_pvalue=None,
            significant=False,
            chance_to_beat_control=None,
            expected_loss=None,
            sequential_pvalue=None,
            method=None,
            series=(),
            reasons=(),
            verdict=None,
        )


class MetricResults(_Frozen):
    """One metric: the control first, then every other variant with its comparison."""

    name: str
    kind: MetricKindName
    primary: bool
    direction: DirectionName
    """Which way is better; verdicts, badges and colours follow it."""
    guardrail: bool
    non_inferiority_margin: float | None
    cap: float | None
    """Each visitor's total counts at most this much (``None``: uncapped)."""
    unit: str | None
    numerator: str | None
    denominator: str | None
    """A ratio metric's two parts (metric names); ``None`` for other kinds."""
    family_size: int
    """How many comparisons share this metric's multiple-testing family (Holm within it)."""
    variants: tuple[VariantResult, ...]

    @property
    def control(self) -> VariantResult:
        return self.variants[0]

    @property
    def treatments(self) -> tuple[VariantResult, ...]:
        return self.variants[1:]


class SRMCheck(_Frozen):
    """The sample-ratio check: observed visitors against the configured weights."""

    visitors: dict[str, int]
    pvalue: float | None
    mismatch: bool
    expected: tuple[float | None, ...] | None
    reason: str | None


class Progress(_Frozen):
    """Progress toward the planned sample size of the primary metric."""

    minimum_detectable_effect: float
    days_running: float | None
    required_per_variant: int | None
    visitors_per_variant: tuple[int, ...]
    fraction: float | None
    days_remaining: float | None
    reason: str | None


class GuardrailAlert(_Frozen):
    """A guardrail metric that a variant harmed, or may have harmed beyond its margin."""

    metric: str
    variant: str
    reason: Literal["significantly_worse", "margin_not_ruled_out"]
    sentence: str


BREAKDOWN_CAVEAT = (
    "Slices are for exploring, not for picking winners: with several slices one will often "
    "look better or worse by chance, the slices are smaller than the experiment so their "
    "intervals are wider, and the experiment was not planned to detect an effect in any one "
    "of them. Decide on the whole experiment; treat a striking slice as the idea for a new "
    "experiment."
)


class SliceResults(_Frozen):
    """One value of a dimension: its visitors, its own sample-ratio check and its metrics."""

    value: str
    other: bool
    """True for the slice that gathers every value after the first ``max_values``."""
    visitors: int
    srm: SRMCheck
    metrics: tuple[MetricResults, ...]


class Breakdown(_Frozen):
    """The comparison per value of one dimension.

    Each metric's p-values are Holm-adjusted across every slice and variant of that metric
    (``family_size`` on its rows), and ``significant`` uses the adjusted p-value.
    """

    dimension: str
    max_values: int
    correction: Literal["holm"]
    caveat: str
    slices: tuple[SliceResults, ...]


class ExperimentResults(_Frozen):
    """The whole statistical read-out of one experiment."""

    experiment: str
    name: str
    status: Literal["draft", "running", "paused", "stopped"]
    winner: str | None
    stopped_at: datetime | None
    confidence_level: float
    generated_at: datetime
    srm: SRMCheck
    progress: Progress
    metrics: tuple[MetricResults, ...]
    verdict: Verdict
    """The experiment's badge: its primary metric's verdict, the strongest variant first."""
    guardrail_alerts: tuple[GuardrailAlert, ...]
    """Guardrails harmed by some variant: shown as a banner even when the primary metric wins."""
    breakdown: Breakdown | None
    """The per-slice comparison when one dimension was asked for (``?dimension=``)."""

    @property
    def primary(self) -> MetricResults | None:
        return next((m for m in self.metrics if m.primary), None)

    @property
    def alpha(self) -> float:
        return 1 - self.confidence_level
