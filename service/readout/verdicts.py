"""The results read-out as typed values, and the plain-language verdict drawn from it.

:class:`ReadOut` parses the JSON of ``GET /v1/experiments/KEY/results`` (see
``service/results.py``); the verdict functions are pure functions of it. The rules, in order:

1. a failed sample-ratio check overrides everything: no comparison is trusted;
2. no visitors in a variant, no conversions, or an undefined lift or interval is "not enough
   data", with the reason, never a number that looks like an answer;
3. a significant comparison (``significant`` is decided on the multiplicity-adjusted p-value)
   with a positive lift is winning, with a negative lift losing;
4. everything else is inconclusive, whatever the point estimate says.

Every metric is read as "higher is better", the way the case studies report their lifts.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

__all__ = [
    "MetricReadOut",
    "ProgressReadOut",
    "ReadOut",
    "SRMReadOut",
    "SeriesPoint",
    "VariantReadOut",
    "Verdict",
    "VerdictKind",
    "comparison_verdict",
    "describe_pvalue",
    "experiment_verdict",
    "family_sizes",
    "format_chance",
    "format_interval",
    "format_lift",
    "format_pvalue",
    "metric_phrase",
    "not_enough_data_reason",
]

Interval = tuple[float, float]


class _ReadOutModel(BaseModel):
    model_config = ConfigDict(frozen=True, extra="ignore")


class SeriesPoint(_ReadOutModel):
    """The cumulative comparison at the end of one UTC day."""

    date: str
    relative_lift: float | None = None
    relative_cs: Interval | None = None
    sequential_pvalue: float | None = None


class VariantReadOut(_ReadOutModel):
    """One variant of one metric; the comparison fields are absent for the control."""

    variant: str
    visitors: int
    total: float
    value: float | None = None
    absolute_lift: float | None = None
    absolute_ci: Interval | None = None
    relative_lift: float | None = None
    relative_ci: Interval | None = None
    pvalue: float | None = None
    adjusted_pvalue: float | None = None
    significant: bool = False
    chance_to_beat_control: float | None = None
    sequential_pvalue: float | None = None
    series: list[SeriesPoint] = Field(default_factory=list)
    reasons: list[str] = Field(default_factory=list)


class MetricReadOut(_ReadOutModel):
    name: str
    kind: Literal["conversion", "mean", "count", "ratio"]
    primary: bool = False
    variants: list[VariantReadOut]

    @property
    def control(self) -> VariantReadOut:
        return self.variants[0]

    @property
    def treatments(self) -> list[VariantReadOut]:
        return self.variants[1:]


class SRMReadOut(_ReadOutModel):
    visitors: dict[str, int]
    pvalue: float | None = None
    mismatch: bool = False
    expected: list[float | None] | None = None
    reason: str | None = None


class ProgressReadOut(_ReadOutModel):
    minimum_detectable_effect: float
    days_running: float | None = None
    required_per_variant: int | None = None
    visitors_per_variant: list[int] = Field(default_factory=list)
    fraction: float | None = None
    days_remaining: float | None = None
    reason: str | None = None


class ReadOut(_ReadOutModel):
    """The whole read-out of one experiment."""

    experiment: str
    name: str = ""
    status: str
    winner: str | None = None
    confidence_level: float = 0.95
    generated_at: str | None = None
    srm: SRMReadOut
    progress: ProgressReadOut | None = None
    metrics: list[MetricReadOut]

    @classmethod
    def from_json(cls, payload: Mapping[str, Any]) -> ReadOut:
        return cls.model_validate(payload)

    @property
    def primary(self) -> MetricReadOut | None:
        return next((m for m in self.metrics if m.primary), None)

    @property
    def alpha(self) -> float:
        return 1 - self.confidence_level


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


@dataclass(frozen=True)
class Verdict:
    """A verdict: its kind, the one-paragraph sentence, and the variant it is about."""

    kind: VerdictKind
    sentence: str
    variant: str | None = None

    @property
    def badge(self) -> str:
        return BADGES[self.kind]


# -- wording -------------------------------------------------------------------------------


def metric_phrase(name: str, kind: str) -> str:
    """How a sentence names a metric: "conversion rate", "revenue per visitor", "aov"."""
    label = name.replace("_", " ").replace("-", " ")
    if kind == "conversion":
        return label if label.endswith("s") else f"{label} rate"
    if kind in {"mean", "count"}:
        return f"{label} per visitor"
    return label


def _percent(x: float, *, signed: bool) -> str:
    value = 100 * x
    text = f"{value:+.0f}" if abs(value) >= 9.95 else f"{value:+.1f}"
    return (text if signed else text.lstrip("+-")) + "%"


def format_lift(x: float | None, *, signed: bool = True) -> str:
    """A relative lift as a percentage: ``+76%``, ``-4.2%``; a dash when undefined."""
    if x is None or not math.isfinite(x):
        return "—"
    return _percent(x, signed=signed)


def format_interval(ci: Interval | None) -> str:
    if ci is None:
        return "—"
    return f"{format_lift(ci[0])} to {format_lift(ci[1])}"


def format_chance(p: float | None) -> str:
    """A probability as a percentage that never rounds to a certainty it does not have."""
    if p is None or not math.isfinite(p):
        return "—"
    if p > 0.999:
        return "over 99.9%"
    if p < 0.001:
        return "under 0.1%"
    return f"{100 * p:.1f}%"


def format_pvalue(p: float | None) -> str:
    if p is None or not math.isfinite(p):
        return "—"
    if p < 0.0001:
        return "<0.0001"
    return f"{p:.4f}" if p < 0.01 else f"{p:.3f}"


def _level(confidence_level: float) -> str:
    return f"{100 * confidence_level:g}%"


# -- rules ---------------------------------------------------------------------------------


def not_enough_data_reason(metric: MetricReadOut, row: VariantReadOut) -> str | None:
    """Why ``row`` cannot be compared with the control yet, or ``None`` when it can."""
    control = metric.control
    empty = [v.variant for v in (control, row) if v.visitors == 0]
    if empty:
        return f"no visitors in {' and '.join(empty)} yet"
    if metric.kind == "conversion" and control.total == 0 and row.total == 0:
        return "no conversions yet in either variant"
    if control.value is None or control.value == 0:
        return f"{control.variant} has no {metric_phrase(metric.name, metric.kind)} yet"
    if row.relative_lift is None or row.relative_ci is None or row.pvalue is None:
        return row.reasons[0] if row.reasons else "the comparison is undefined"
    return None


def _srm_sentence(readout: ReadOut) -> str:
    return (
        f"Sample ratio mismatch ({describe_pvalue(readout.srm.pvalue)}): visitors are not split "
        "the way the experiment is configured, so something is losing or misrouting visitors "
        "and no lift here can be trusted. Find the cause before reading any result."
    )


def _evidence(readout: ReadOut, row: VariantReadOut) -> str:
    interval = f"{_level(readout.confidence_level)} interval {format_interval(row.relative_ci)}"
    chance = row.chance_to_beat_control
    tail = f"; {format_chance(chance)} chance to beat control" if chance is not None else ""
    return f"({interval}){tail}"


def describe_pvalue(p: float | None) -> str:
    """``p = 0.0312`` or ``p < 0.0001``, for sentences."""
    shown = format_pvalue(p)
    return f"p {shown.replace('<', '< ')}" if shown.startswith("<") else f"p = {shown}"


def _pvalues(row: VariantReadOut) -> str:
    text = describe_pvalue(row.pvalue)
    adjusted = format_pvalue(row.adjusted_pvalue)
    if row.adjusted_pvalue is not None and adjusted != format_pvalue(row.pvalue):
        text += f", {adjusted} after adjusting for several comparisons"
    return text


def _peeking_caveat(readout: ReadOut, row: VariantReadOut) -> str:
    seq = row.sequential_pvalue
    if seq is None or seq < readout.alpha:
        return ""
    return (
        f" The always-valid p-value ({format_pvalue(seq)}) is not yet below "
        f"{readout.alpha:g}: if you have been checking often, wait for the planned sample size."
    )


def comparison_verdict(
    readout: ReadOut,
    metric: MetricReadOut,
    row: VariantReadOut,
    *,
    variant_label: str | None = None,
) -> Verdict:
    """The verdict on one non-control variant of one metric."""
    who = variant_label or row.variant
    if readout.srm.mismatch:
        return Verdict(VerdictKind.SRM, _srm_sentence(readout), row.variant)
    reason = not_enough_data_reason(metric, row)
    if reason is not None:
        return Verdict(
            VerdictKind.NOT_ENOUGH_DATA, f"Not enough data yet for {who}: {reason}.", row.variant
        )
    lift = row.relative_lift
    assert lift is not None  # not_enough_data_reason returned None
    what = metric_phrase(metric.name, metric.kind)
    if row.significant and lift > 0:
        sentence = (
            f"{who} raised {what} by {format_lift(lift, signed=False)} {_evidence(readout, row)}. "
            f"Significant ({_pvalues(row)})."
        )
        return Verdict(VerdictKind.WINNING, sentence + _peeking_caveat(readout, row), row.variant)
    if row.significant and lift < 0:
        sentence = (
            f"{who} lowered {what} by {format_lift(lift, signed=False)} "
            f"{_evidence(readout, row)}. Significant loss ({_pvalues(row)})."
        )
        return Verdict(VerdictKind.LOSING, sentence + _peeking_caveat(readout, row), row.variant)
    sentence = (
        f"No clear difference yet: {who} changed {what} by {format_lift(lift)} "
        f"{_evidence(readout, row)}. Not significant ({_pvalues(row)})."
    )
    return Verdict(VerdictKind.INCONCLUSIVE, sentence, row.variant)


def experiment_verdict(
    readout: ReadOut, variant_labels: Mapping[str, str] | None = None
) -> Verdict:
    """The experiment's badge: its primary metric's verdict, the strongest variant first.

    Winning if any variant significantly beats the control (the largest lift is named); losing
    if some variant is significantly worse and none better; inconclusive if a comparison exists
    but is not significant; otherwise not enough data.
    """
    labels = variant_labels or {}
    if readout.srm.mismatch:
        return Verdict(VerdictKind.SRM, _srm_sentence(readout))
    primary = readout.primary
    if primary is None:
        return Verdict(VerdictKind.NOT_ENOUGH_DATA, "The experiment has no primary metric.")
    if sum(readout.srm.visitors.values()) == 0:
        return Verdict(VerdictKind.NOT_ENOUGH_DATA, "Not enough data yet: no visitors so far.")
    verdicts = [
        comparison_verdict(readout, primary, row, variant_label=labels.get(row.variant))
        for row in primary.treatments
    ]
    lifts = {row.variant: row.relative_lift or 0.0 for row in primary.treatments}
    for kind, pick in ((VerdictKind.WINNING, max), (VerdictKind.LOSING, min)):
        found = [v for v in verdicts if v.kind is kind]
        if found:
            return pick(found, key=lambda v: lifts[v.variant or ""])
    found = [v for v in verdicts if v.kind is VerdictKind.INCONCLUSIVE]
    if found:
        return max(found, key=lambda v: lifts[v.variant or ""])
    return verdicts[0] if verdicts else Verdict(VerdictKind.NOT_ENOUGH_DATA, "No variants.")


def family_sizes(metrics: Sequence[MetricReadOut]) -> dict[str, int]:
    """How many comparisons share each metric's multiple-testing family (see results.py)."""
    primary = sum(len(m.treatments) for m in metrics if m.primary)
    secondary = sum(len(m.treatments) for m in metrics if not m.primary)
    return {m.name: primary if m.primary else secondary for m in metrics}
