"""The read-out turned into display-ready values: table cells, progress, dashboard rows.

Pure functions of an experiment definition and its :class:`ExperimentResults`, shared by the
HTML pages (:mod:`service.report.html`) and the terminal (:mod:`service.report.terminal`), so
both show the same figures. The verdicts are the ones the read-out carries; nothing here
decides one. No charts are drawn here.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime

from experiments.definitions import Experiment
from service.readout.model import (
    ExperimentResults,
    MetricKindName,
    MetricResults,
    VariantResult,
    Verdict,
    VerdictKind,
)
from service.readout.wording import (
    DASH,
    describe_pvalue,
    format_chance,
    format_interval,
    format_level,
    format_lift,
    format_number,
    format_pvalue,
    metric_phrase,
    with_unit,
)

__all__ = [
    "DASH",
    "BreakdownView",
    "Cell",
    "DashboardRow",
    "MetricView",
    "ProgressView",
    "ReportView",
    "SRMRow",
    "VariantView",
    "dashboard_row",
    "labels",
    "report_view",
]


TOTAL_HEADER: Mapping[MetricKindName, str] = {
    "conversion": "Conversions",
    "mean": "Total",
    "count": "Events",
    "ratio": "Numerator total",
}
VALUE_HEADER: Mapping[MetricKindName, str] = {
    "conversion": "Rate",
    "mean": "Mean per visitor",
    "count": "Per visitor",
    "ratio": "Ratio",
}


_number = format_number


def _value(kind: MetricKindName, x: float | None, unit: str | None = None) -> str:
    if kind == "conversion":
        return DASH if x is None else f"{100 * x:.2f}%"
    return with_unit(_number(x), unit)


def _absolute(
    kind: MetricKindName, x: float | None, ci: tuple[float, float] | None, unit: str | None
) -> Cell:
    if x is None:
        return Cell(DASH)
    if kind == "conversion":
        text = f"{100 * x:+.2f} pp"
        if ci is None:
            return Cell(text)
        return Cell(text, f"{100 * ci[0]:+.2f} to {100 * ci[1]:+.2f} pp")
    text = with_unit(_number(x, signed=True), unit)
    if ci is None:
        return Cell(text)
    low, high = (with_unit(_number(c, signed=True), unit) for c in ci)
    return Cell(text, f"{low} to {high}")


def _total(kind: MetricKindName, x: float, unit: str | None = None) -> str:
    if kind in {"conversion", "count"}:
        return with_unit(f"{x:,.0f}", unit if kind == "count" else None)
    return with_unit(f"{x:,.2f}", unit if kind == "mean" else None)


def _date(seconds: float | None) -> str:
    if seconds is None:
        return "not started"
    return datetime.fromtimestamp(seconds, UTC).strftime("%d %b %Y")


@dataclass(frozen=True)
class Cell:
    """A table cell: the figure, and an optional second line (its interval)."""

    main: str
    sub: str = ""
    muted: bool = False

    def __str__(self) -> str:
        return f"{self.main} ({self.sub})" if self.sub else self.main


@dataclass(frozen=True)
class VariantView:
    key: str
    name: str
    weight: str
    visitors: int


@dataclass(frozen=True)
class MetricView:
    """One metric's section: its verdicts, its table, the reasons some numbers are missing."""

    metric: MetricResults
    title: str
    verdicts: list[Verdict]
    headers: list[str]
    rows: list[list[Cell]]
    notes: list[str]
    facts: list[str]
    """What the reader must know to read the figures: direction, cap, a ratio's parts."""


@dataclass(frozen=True)
class ProgressView:
    available: bool
    reason: str | None
    visitors: int
    required: int | None
    percent: float
    days_running: str
    remaining: str
    sentence: str
    """The progress in words, which never reads as more than the plan needs."""


@dataclass(frozen=True)
class SRMRow:
    name: str
    weight: str
    observed: str
    expected: str


@dataclass(frozen=True)
class ReportView:
    """Everything the report shows, as display-ready values (charts are the page's own)."""

    experiment: Experiment
    results: ExperimentResults
    title: str
    started: str
    level: str
    variants: list[VariantView]
    srm_rows: list[SRMRow]
    srm_pvalue: str
    progress: ProgressView
    metrics: list[MetricView]
    guardrails: list[MetricView]
    stopped: str | None
    """``Stopped 01 Dec 2026: shipped Filters`` (or with no winner) once stopped."""
    breakdown: BreakdownView | None
    generated: str


def labels(experiment: Experiment) -> dict[str, str]:
    """Each variant's display name by key."""
    return {v.key: v.name or v.key for v in experiment.variants}


def _row_cells(metric: MetricResults, row: VariantResult, label: str) -> list[Cell]:
    cells = [
        Cell(label, row.variant if row.variant != label else ""),
        Cell(f"{row.visitors:,}"),
        Cell(_total(metric.kind, row.total, metric.unit)),
        Cell(_value(metric.kind, row.value, metric.unit)),
    ]
    adjusted = metric.family_size > 1
    blanks = 6 if adjusted else 5
    verdict = row.verdict
    if verdict is None or verdict.kind is VerdictKind.NOT_ENOUGH_DATA:
        text = "control" if verdict is None else "not enough data"
        return [*cells, Cell(text, muted=True), *[Cell(DASH)] * (blanks - 1)]
    comparison = [
        _absolute(metric.kind, row.absolute_lift, row.absolute_ci, metric.unit),
        Cell(format_lift(row.relative_lift), format_interval(row.relative_ci)),
        Cell(format_pvalue(row.pvalue)),
    ]
    if adjusted:
        comparison.append(Cell(format_pvalue(row.adjusted_pvalue)))
    comparison += [
        Cell(format_pvalue(row.sequential_pvalue)),
        Cell(format_chance(row.chance_to_beat_control)),
    ]
    return [*cells, *comparison]


def _metric_view(names: Mapping[str, str], metric: MetricResults) -> MetricView:
    headers = [
        "Variant",
        "Visitors",
        TOTAL_HEADER[metric.kind],
        VALUE_HEADER[metric.kind],
        "Absolute lift (interval)",
        "Relative lift (interval)",
        "p-value",
    ]
    if metric.family_size > 1:
        headers.append("Adjusted p")
    headers += ["Always-valid p", "Chance to beat control"]
    return MetricView(
        metric=metric,
        title=metric_title(metric),
        verdicts=[row.verdict for row in metric.treatments if row.verdict is not None],
        headers=headers,
        rows=[
            _row_cells(metric, row, names.get(row.variant, row.variant)) for row in metric.variants
        ],
        notes=sorted({r for row in metric.treatments for r in row.reasons}),
        facts=metric_facts(metric),
    )


def metric_title(metric: MetricResults) -> str:
    """The metric's name in a heading; a ratio names its parts: "aov (revenue ÷ orders)"."""
    title = metric_phrase(metric.name, metric.kind)
    if metric.kind == "ratio":
        title += f" ({metric.numerator} ÷ {metric.denominator})"
    return title


def metric_facts(metric: MetricResults) -> list[str]:
    facts = ["Lower is better." if metric.direction == "lower" else "Higher is better."]
    if metric.cap is not None:
        cap = with_unit(_number(metric.cap), metric.unit)
        facts.append(f"Capped: each visitor counts at most {cap}.")
    if metric.guardrail:
        text = "Guardrail: flagged when significantly worse"
        if metric.non_inferiority_margin is not None:
            margin = format_lift(metric.non_inferiority_margin, signed=False)
            text += f" or when a harm beyond {margin} cannot be ruled out"
        facts.append(text + ".")
    return facts


def _progress(results: ExperimentResults) -> ProgressView:
    progress = results.progress
    running = DASH if progress.days_running is None else f"{progress.days_running:.0f}"
    visitors = min(progress.visitors_per_variant, default=0)
    required = progress.required_per_variant
    if required is None or progress.fraction is None:
        return ProgressView(False, progress.reason, visitors, None, 0.0, running, "", "")
    remaining = progress.days_remaining
    if remaining is None:
        text = ""
    elif remaining <= 0:
        text = "The planned sample size is reached."
    else:
        text = f"About {math.ceil(remaining)} more day{'s' if remaining > 1 else ''} "
        text += "at the current traffic."
    percent = min(progress.fraction, 1.0) * 100
    planned = f"to detect a {progress.minimum_detectable_effect:.0%} relative change with 80% power"
    if visitors >= required:
        sentence = (
            f"The planned sample size is reached: {required:,} visitors per variant were needed "
            f"{planned}, and the smallest variant has {visitors:,}."
        )
        text = ""
    else:
        sentence = (
            f"{visitors:,} of the {required:,} visitors per variant needed {planned} "
            f"({percent:.0f}%)."
        )
    return ProgressView(True, None, visitors, required, percent, running, text, sentence)


def _srm_rows(experiment: Experiment, results: ExperimentResults) -> list[SRMRow]:
    expected = results.srm.expected or ()
    rows = []
    for index, variant in enumerate(experiment.variants):
        seen = results.srm.visitors.get(variant.key, 0)
        want = expected[index] if index < len(expected) else None
        rows.append(
            SRMRow(variant.name or variant.key, f"{variant.weight:.0%}", f"{seen:,}", _number(want))
        )
    return rows


def stopped_text(experiment: Experiment, results: ExperimentResults) -> str | None:
    """``Stopped 01 Dec 2026: shipped Filters`` for a stopped experiment, else ``None``."""
    if results.status != "stopped":
        return None
    when = _date(experiment.stopped_at)
    if results.winner is None:
        return f"Stopped {when} with no winner shipped"
    return f"Stopped {when}: shipped {labels(experiment).get(results.winner, results.winner)}"


def report_view(experiment: Experiment, results: ExperimentResults) -> ReportView:
    """The report of ``experiment`` as display-ready values."""
    names = labels(experiment)
    visitors = results.srm.visitors
    return ReportView(
        experiment=experiment,
        results=results,
        title=experiment.name or experiment.key,
        started=_date(experiment.started_at),
        level=format_level(results.confidence_level),
        variants=[
            VariantView(v.key, names[v.key], f"{v.weight:.0%}", visitors.get(v.key, 0))
            for v in experiment.variants
        ],
        srm_rows=_srm_rows(experiment, results),
        srm_pvalue=describe_pvalue(results.srm.pvalue),
        progress=_progress(results),
        metrics=[_metric_view(names, m) for m in results.metrics if not m.guardrail],
        guardrails=[_metric_view(names, m) for m in results.metrics if m.guardrail],
        stopped=stopped_text(experiment, results),
        breakdown=breakdown_view(experiment, results),
        generated=results.generated_at.astimezone(UTC).strftime("%d %b %Y %H:%M UTC"),
    )


@dataclass(frozen=True)
class DashboardRow:
    key: str
    title: str
    status: str
    started: str
    days: str
    split: str
    visitors: int
    metric: str
    lifts: list[str]
    verdict: Verdict
    shipped: str | None
    """"Shipped Filters" (or "Stopped, none shipped") once stopped."""
    guardrail_alerts: list[str]
    archived: bool = False


def dashboard_row(experiment: Experiment, results: ExperimentResults) -> DashboardRow:
    """One experiment's line on the dashboard: its primary metric's lifts and its verdict."""
    names = labels(experiment)
    primary = results.primary
    lifts: list[str] = []
    for row in primary.treatments if primary is not None else ():
        who = names.get(row.variant, row.variant)
        if row.verdict is None or row.verdict.kind is VerdictKind.NOT_ENOUGH_DATA:
            lifts.append(f"{who}: not enough data")
        else:
            lift, interval = format_lift(row.relative_lift), format_interval(row.relative_ci)
            lifts.append(f"{who}: {lift} ({interval})")
    days = results.progress.days_running
    return DashboardRow(
        key=experiment.key,
        title=experiment.name or experiment.key,
        status=experiment.status.value,
        started=_date(experiment.started_at),
        days=DASH if days is None else f"{days:.0f}",
        split=" · ".join(f"{v.key} {v.weight:.0%}" for v in experiment.variants),
        visitors=sum(results.srm.visitors.values()),
        metric=metric_phrase(primary.name, primary.kind) if primary else DASH,
        lifts=lifts,
        verdict=results.verdict,
        shipped=_shipped(experiment, results),
        guardrail_alerts=[a.sentence for a in results.guardrail_alerts],
        archived=experiment.archived,
    )


def _shipped(experiment: Experiment, results: ExperimentResults) -> str | None:
    if results.status != "stopped":
        return None
    if results.winner is None:
        return "Stopped, none shipped"
    return f"Shipped {labels(experiment).get(results.winner, results.winner)}"


@dataclass(frozen=True)
class BreakdownTable:
    """One metric across the slices: a row per (slice, variant)."""

    title: str
    headers: list[str]
    rows: list[tuple[list[Cell], Verdict | None]]


@dataclass(frozen=True)
class BreakdownView:
    dimension: str
    dimensions: list[str]
    caveat: str
    slices: list[tuple[str, str, str]]
    """Per slice: its value, its visitors and its sample-ratio p-value (flagged if mismatched)."""
    tables: list[BreakdownTable]


def breakdown_view(experiment: Experiment, results: ExperimentResults) -> BreakdownView | None:
    breakdown = results.breakdown
    if breakdown is None:
        return None
    names = labels(experiment)
    slices = [
        (
            s.value,
            f"{s.visitors:,}",
            describe_pvalue(s.srm.pvalue) + (" — sample ratio mismatch" if s.srm.mismatch else ""),
        )
        for s in breakdown.slices
    ]
    tables = []
    for position, metric in enumerate(results.metrics):
        headers = [
            breakdown.dimension,
            "Variant",
            "Visitors",
            VALUE_HEADER[metric.kind],
            "Relative lift (interval)",
            "p-value",
            "Adjusted p",
        ]
        rows: list[tuple[list[Cell], Verdict | None]] = []
        for s in breakdown.slices:
            part = s.metrics[position]
            for row in part.variants:
                rows.append(
                    (
                        [
                            Cell(s.value),
                            Cell(names.get(row.variant, row.variant)),
                            Cell(f"{row.visitors:,}"),
                            Cell(_value(part.kind, row.value, part.unit)),
                            Cell(format_lift(row.relative_lift), format_interval(row.relative_ci))
                            if row.verdict is not None
                            else Cell("control", muted=True),
                            Cell(format_pvalue(row.pvalue)),
                            Cell(format_pvalue(row.adjusted_pvalue)),
                        ],
                        row.verdict,
                    )
                )
        tables.append(BreakdownTable(metric_title(metric), headers, rows))
    return BreakdownView(
        dimension=breakdown.dimension,
        dimensions=[d.name for d in experiment.dimensions],
        caveat=breakdown.caveat,
        slices=slices,
        tables=tables,
    )
