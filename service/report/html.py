"""The marketer's pages (dashboard, experiment report) and the same read-out for a terminal.

Everything here is a pure function of an experiment definition and its results JSON (the shape
``service/results.py`` builds): verdicts come from :mod:`service.readout.verdicts`, charts from
:mod:`service.report.charts`, HTML from the Jinja templates in ``service/templates``. A report is
one
self-contained HTML document (CSS and SVG charts inline, no script, nothing fetched), so the
page served at ``/experiments/KEY`` and the file written by ``abacus report`` are the same.
Rendering draws charts, so callers run it in a worker thread.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from functools import cache
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape
from markupsafe import Markup
from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from experiments.definitions import Experiment
from service.readout.verdicts import (
    MetricReadOut,
    ReadOut,
    VariantReadOut,
    Verdict,
    VerdictKind,
    comparison_verdict,
    describe_pvalue,
    experiment_verdict,
    family_sizes,
    format_chance,
    format_interval,
    format_lift,
    format_pvalue,
    metric_phrase,
)
from service.report.charts import LiftRow, SequenceLine, lift_chart, sequence_chart

__all__ = [
    "dashboard_html",
    "not_found_html",
    "report_context",
    "report_html",
    "results_renderables",
]

DASH = "—"


@cache
def _templates() -> Environment:
    return Environment(
        loader=PackageLoader("service", "templates"),
        autoescape=select_autoescape(default=True, default_for_string=True),
        trim_blocks=True,
        lstrip_blocks=True,
    )


def _inline(svg: str) -> Markup:
    """Chart markup to insert as is: matplotlib escapes every text it writes into the SVG."""
    return Markup(svg)


# -- numbers -------------------------------------------------------------------------------


def _number(x: float | None, *, signed: bool = False) -> str:
    if x is None or not math.isfinite(x):
        return DASH
    sign = "+" if signed else ""
    if x == 0:
        return "0"
    if abs(x) >= 100:
        return f"{x:{sign},.0f}"
    if abs(x) >= 1:
        return f"{x:{sign},.2f}"
    return f"{x:{sign}#.3g}"


def _value(kind: str, x: float | None) -> str:
    if kind == "conversion":
        return DASH if x is None else f"{100 * x:.2f}%"
    return _number(x)


def _absolute(kind: str, x: float | None, ci: tuple[float, float] | None) -> Cell:
    if x is None:
        return Cell(DASH)
    if kind == "conversion":
        text = f"{100 * x:+.2f} pp"
        if ci is None:
            return Cell(text)
        return Cell(text, f"{100 * ci[0]:+.2f} to {100 * ci[1]:+.2f} pp")
    text = _number(x, signed=True)
    if ci is None:
        return Cell(text)
    return Cell(text, f"{_number(ci[0], signed=True)} to {_number(ci[1], signed=True)}")


def _total(kind: str, x: float) -> str:
    return f"{x:,.0f}" if kind in {"conversion", "count"} else f"{x:,.2f}"


def _timestamp(iso: str | None) -> str | None:
    if iso is None:
        return None
    try:
        return datetime.fromisoformat(iso).astimezone(UTC).strftime("%d %b %Y %H:%M UTC")
    except ValueError:
        return iso


def _date(seconds: float | None) -> str:
    if seconds is None:
        return "not started"
    return datetime.fromtimestamp(seconds, UTC).strftime("%d %b %Y")


TOTAL_HEADER = {
    "conversion": "Conversions",
    "mean": "Total",
    "count": "Events",
    "ratio": "Numerator total",
}
VALUE_HEADER = {
    "conversion": "Rate",
    "mean": "Mean per visitor",
    "count": "Per visitor",
    "ratio": "Ratio",
}


# -- view models ---------------------------------------------------------------------------


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
    name: str
    title: str
    kind: str
    primary: bool
    verdicts: list[Verdict]
    headers: list[str]
    rows: list[list[Cell]]
    chart: Markup | None
    chart_note: str | None
    notes: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class ProgressView:
    available: bool
    reason: str | None
    visitors: int
    required: int | None
    percent: float
    days_running: str
    remaining: str


def _labels(experiment: Experiment) -> dict[str, str]:
    return {v.key: v.name or v.key for v in experiment.variants}


def _row_cells(
    metric: MetricReadOut, row: VariantReadOut, verdict: Verdict | None, label: str, adjusted: bool
) -> list[Cell]:
    cells = [
        Cell(label, row.variant if row.variant != label else ""),
        Cell(f"{row.visitors:,}"),
        Cell(_total(metric.kind, row.total)),
        Cell(_value(metric.kind, row.value)),
    ]
    blanks = 6 if adjusted else 5
    if verdict is None:
        return [*cells, Cell("control", muted=True), *[Cell(DASH)] * (blanks - 1)]
    if verdict.kind is VerdictKind.NOT_ENOUGH_DATA:
        return [*cells, Cell("not enough data", muted=True), *[Cell(DASH)] * (blanks - 1)]
    comparison = [
        _absolute(metric.kind, row.absolute_lift, row.absolute_ci),
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


def _sequence(
    metric: MetricReadOut, readout: ReadOut, labels: Mapping[str, str], chart_id: str
) -> tuple[Markup | None, str | None]:
    lines = []
    for row in metric.treatments:
        # Days before the sequence is defined (the first hours of traffic) are left out.
        shown = [p for p in row.series if p.relative_cs is not None]
        if len(shown) < 2:
            continue
        lines.append(
            SequenceLine(
                label=labels.get(row.variant, row.variant),
                dates=[date.fromisoformat(p.date) for p in shown],
                lifts=[p.relative_lift for p in shown],
                intervals=[p.relative_cs for p in shown],
            )
        )
    if not lines:
        if metric.kind == "ratio":
            return None, "No daily chart for ratio metrics: they have no sequential test."
        return None, "Not enough data yet for a daily chart: it needs two days with data."
    level = f"{100 * readout.confidence_level:g}%"
    title = f"Cumulative relative lift of {metric_phrase(metric.name, metric.kind)} by day"
    svg = sequence_chart(lines, chart_id=chart_id, title=title, level=level)
    return _inline(svg), None


def _metric_view(
    experiment: Experiment, readout: ReadOut, metric: MetricReadOut, family: int
) -> MetricView:
    labels = _labels(experiment)
    adjusted = family > 1
    verdicts = [
        comparison_verdict(readout, metric, row, variant_label=labels.get(row.variant))
        for row in metric.treatments
    ]
    headers = [
        "Variant",
        "Visitors",
        TOTAL_HEADER[metric.kind],
        VALUE_HEADER[metric.kind],
        "Absolute lift (interval)",
        "Relative lift (interval)",
        "p-value",
    ]
    if adjusted:
        headers.append("Adjusted p")
    headers += ["Always-valid p", "Chance to beat control"]
    rows = [
        _row_cells(metric, metric.control, None, labels.get(metric.control.variant, ""), adjusted)
    ]
    rows += [
        _row_cells(metric, row, verdict, labels.get(row.variant, row.variant), adjusted)
        for row, verdict in zip(metric.treatments, verdicts, strict=True)
    ]
    chart, note = _sequence(metric, readout, labels, f"seq-{experiment.key}-{metric.name}")
    notes = sorted({r for row in metric.treatments for r in row.reasons})
    return MetricView(
        name=metric.name,
        title=metric_phrase(metric.name, metric.kind),
        kind=metric.kind,
        primary=metric.primary,
        verdicts=verdicts,
        headers=headers,
        rows=rows,
        chart=chart,
        chart_note=note,
        notes=notes,
    )


def _progress(readout: ReadOut) -> ProgressView:
    progress = readout.progress
    if progress is None:
        return ProgressView(False, "no progress information", 0, None, 0.0, DASH, "")
    running = DASH if progress.days_running is None else f"{progress.days_running:.0f}"
    visitors = min(progress.visitors_per_variant, default=0)
    required = progress.required_per_variant
    if required is None or progress.fraction is None:
        return ProgressView(False, progress.reason, visitors, None, 0.0, running, "")
    remaining = progress.days_remaining
    if remaining is None:
        text = ""
    elif remaining <= 0:
        text = "The planned sample size is reached."
    else:
        text = f"About {math.ceil(remaining)} more day{'s' if remaining > 1 else ''} "
        text += "at the current traffic."
    return ProgressView(
        True, None, visitors, required, min(progress.fraction, 1.0) * 100, running, text
    )


def _lift_rows(
    experiment: Experiment, readout: ReadOut, metric: MetricReadOut, prefix: str = ""
) -> list[LiftRow]:
    labels = _labels(experiment)
    rows = []
    for row in metric.treatments:
        verdict = comparison_verdict(readout, metric, row)
        label = metric_phrase(metric.name, metric.kind)
        if len(metric.treatments) > 1:
            label += f" · {labels.get(row.variant, row.variant)}"
        ok = verdict.kind is not VerdictKind.NOT_ENOUGH_DATA
        rows.append(
            LiftRow(
                label=prefix + label,
                lift=row.relative_lift if ok else None,
                interval=row.relative_ci if ok else None,
                tone=verdict.kind.value,
            )
        )
    return rows


def _srm(experiment: Experiment, readout: ReadOut) -> list[dict[str, str]]:
    expected = readout.srm.expected or []
    out = []
    for index, variant in enumerate(experiment.variants):
        seen = readout.srm.visitors.get(variant.key, 0)
        want = expected[index] if index < len(expected) else None
        out.append(
            {
                "name": variant.name or variant.key,
                "weight": f"{variant.weight:.0%}",
                "observed": f"{seen:,}",
                "expected": _number(want),
            }
        )
    return out


def report_context(
    experiment: Experiment, results: Mapping[str, Any], *, standalone: bool = False
) -> dict[str, Any]:
    """Everything the report template shows, as display-ready values."""
    readout = ReadOut.from_json(results)
    labels = _labels(experiment)
    families = family_sizes(readout.metrics)
    metrics = [_metric_view(experiment, readout, m, families[m.name]) for m in readout.metrics]
    lift_rows = [row for m in readout.metrics for row in _lift_rows(experiment, readout, m)]
    level = f"{100 * readout.confidence_level:g}%"
    lift_svg = None
    if lift_rows:
        lift_svg = _inline(
            lift_chart(
                lift_rows,
                chart_id=f"lift-{experiment.key}",
                level=level,
                title=f"Relative lift with its {level} interval, per metric",
            )
        )
    visitors = readout.srm.visitors
    return {
        "standalone": standalone,
        "experiment": experiment,
        "title": experiment.name or experiment.key,
        "started": _date(experiment.started_at),
        "variants": [
            VariantView(v.key, labels[v.key], f"{v.weight:.0%}", visitors.get(v.key, 0))
            for v in experiment.variants
        ],
        "readout": readout,
        "verdict": experiment_verdict(readout, labels),
        "srm_rows": _srm(experiment, readout),
        "srm_pvalue": describe_pvalue(readout.srm.pvalue),
        "progress": _progress(readout),
        "lift_svg": lift_svg,
        "level": level,
        "metrics": metrics,
        "generated": _timestamp(readout.generated_at),
    }


def report_html(
    experiment: Experiment, results: Mapping[str, Any], *, standalone: bool = False
) -> str:
    """The report page of one experiment (``standalone`` drops the links back to the service)."""
    context = report_context(experiment, results, standalone=standalone)
    return _templates().get_template("report.html").render(context)


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


def _dashboard_row(experiment: Experiment, readout: ReadOut) -> DashboardRow:
    labels = _labels(experiment)
    primary = readout.primary
    lifts: list[str] = []
    if primary is not None:
        for row in primary.treatments:
            verdict = comparison_verdict(readout, primary, row)
            who = labels.get(row.variant, row.variant)
            if verdict.kind is VerdictKind.NOT_ENOUGH_DATA:
                lifts.append(f"{who}: not enough data")
            else:
                lifts.append(
                    f"{who}: {format_lift(row.relative_lift)} ({format_interval(row.relative_ci)})"
                )
    days = readout.progress.days_running if readout.progress else None
    return DashboardRow(
        key=experiment.key,
        title=experiment.name or experiment.key,
        status=experiment.status.value,
        started=_date(experiment.started_at),
        days=DASH if days is None else f"{days:.0f}",
        split=" · ".join(f"{v.key} {v.weight:.0%}" for v in experiment.variants),
        visitors=sum(readout.srm.visitors.values()),
        metric=metric_phrase(primary.name, primary.kind) if primary else DASH,
        lifts=lifts,
        verdict=experiment_verdict(readout, labels),
    )


def dashboard_html(items: Sequence[tuple[Experiment, Mapping[str, Any]]]) -> str:
    """The list of every experiment with its primary metric's lift and verdict badge."""
    readouts = [(e, ReadOut.from_json(r)) for e, r in items]
    rows = [_dashboard_row(e, r) for e, r in readouts]
    chart_rows: list[LiftRow] = []
    for experiment, readout in readouts:
        if readout.primary is not None:
            chart_rows += _lift_rows(
                experiment, readout, readout.primary, prefix=f"{experiment.key}: "
            )
    chart = None
    if chart_rows:
        chart = _inline(
            lift_chart(
                chart_rows,
                chart_id="lift-dashboard",
                level="confidence",
                title="Primary metric lift of every experiment",
            )
        )
    return _templates().get_template("dashboard.html").render(rows=rows, chart=chart)


def not_found_html(key: str) -> str:
    return _templates().get_template("not_found.html").render(key=key)


def login_html(next_path: str, error: str | None = None) -> str:
    return _templates().get_template("login.html").render(next=next_path, error=error)


# -- terminal --------------------------------------------------------------------------------

_STYLE = {
    VerdictKind.WINNING: "bold green",
    VerdictKind.LOSING: "bold red",
    VerdictKind.INCONCLUSIVE: "bold",
    VerdictKind.SRM: "bold yellow",
    VerdictKind.NOT_ENOUGH_DATA: "dim",
}


def _terminal_table(metric: MetricView) -> Table:
    """The page's table turned sideways (a column per variant), so it fits a terminal."""
    title = f"{metric.title}{' (primary)' if metric.primary else ''}"
    table = Table(
        "",
        *(row[0].sub or row[0].main for row in metric.rows),
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    for index, header in enumerate(metric.headers[1:], start=1):
        table.add_row(header, *(str(row[index]) for row in metric.rows))
    return table


def results_renderables(experiment: Experiment, results: Mapping[str, Any]) -> RenderableType:
    """The read-out as rich text and tables, for ``abacus results KEY``."""
    context = report_context(experiment, results)
    readout: ReadOut = context["readout"]
    verdict: Verdict = context["verdict"]
    parts: list[RenderableType] = [
        Text(
            f"{context['title']} ({experiment.key}) · {experiment.status.value} · "
            f"started {context['started']}",
            style="bold",
        ),
        Text.assemble((f"[{verdict.badge}] ", _STYLE[verdict.kind]), verdict.sentence),
    ]
    if readout.srm.mismatch:
        parts.append(
            Text(
                "SAMPLE RATIO MISMATCH: visitors are not split as configured "
                f"({context['srm_pvalue']}); do not trust these numbers.",
                style="bold yellow",
            )
        )
    for metric in context["metrics"]:
        parts.append(_terminal_table(metric))
        parts += [
            Text.assemble((f"[{v.badge}] ", _STYLE[v.kind]), v.sentence)
            for v in metric.verdicts
            if v.sentence != verdict.sentence
        ]
    progress: ProgressView = context["progress"]
    if progress.available:
        parts.append(
            Text(
                f"Progress: {progress.visitors:,} of {progress.required:,} visitors per "
                f"variant ({progress.percent:.0f}%). {progress.remaining}"
            )
        )
    elif progress.reason:
        parts.append(Text(f"Progress: {progress.reason}."))
    return Group(*parts)
