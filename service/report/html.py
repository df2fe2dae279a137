"""The marketer's pages: the dashboard of every experiment and one experiment's report.

Figures come from :mod:`service.report.views`, charts from :mod:`service.report.charts`, HTML
from the templates in ``service/templates`` through :mod:`service.jinja`. A report is one
self-contained HTML document (CSS and SVG charts inline, no script, nothing fetched), so the
page served at ``/experiments/KEY`` and the file written by ``abacus report`` are the same.
Rendering draws charts, so callers run it in a worker thread.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from markupsafe import Markup

from experiments.definitions import Experiment
from service.jinja import render
from service.readout.model import ExperimentResults, MetricResults
from service.report.charts import (
    LiftRow,
    lift_chart,
    lift_rows,
    sequence_chart,
    sequence_lines,
)
from service.report.history import AccessView
from service.report.views import MetricView, dashboard_row, labels, report_view

__all__ = ["dashboard_html", "login_html", "not_found_html", "report_html", "share_message_html"]


def _inline(svg: str) -> Markup:
    """Chart markup to insert as is: matplotlib escapes every text it writes into the SVG."""
    return Markup(svg)


@dataclass(frozen=True)
class MetricSection:
    """A metric's figures and, when it has two days with data, its daily chart."""

    view: MetricView
    chart: Markup | None
    chart_note: str | None


def _sequence(
    view: MetricView, names: Mapping[str, str], level: str, chart_id: str
) -> MetricSection:
    metric = view.metric
    lines = sequence_lines(metric, names)
    if not lines:
        note = "Not enough data yet for a daily chart: it needs two days with data."
        if metric.kind == "ratio":
            note = "No daily chart for ratio metrics: they have no sequential test."
        return MetricSection(view, None, note)
    title = f"Cumulative relative lift of {view.title} by day"
    svg = sequence_chart(lines, chart_id=chart_id, title=title, level=level)
    return MetricSection(view, _inline(svg), None)


def _lift_rows(experiment: Experiment, metric: MetricResults, prefix: str = "") -> list[LiftRow]:
    return lift_rows(metric, labels(experiment), prefix)


def report_html(
    experiment: Experiment,
    results: ExperimentResults,
    *,
    standalone: bool = False,
    access: AccessView | None = None,
) -> str:
    """The report page of one experiment (``standalone`` drops the links back to the service;
    ``access`` adds the History section and, for editors, the share form)."""
    view = report_view(experiment, results)
    names = labels(experiment)
    sections = [
        _sequence(m, names, view.level, f"seq-{experiment.key}-{m.metric.name}")
        for m in view.metrics
    ]
    guardrail_sections = [
        _sequence(m, names, view.level, f"seq-{experiment.key}-{m.metric.name}")
        for m in view.guardrails
    ]
    lift_rows = [row for m in results.metrics for row in _lift_rows(experiment, m)]
    lift_svg = None
    if lift_rows:
        title = f"Relative lift with its {view.level} interval, per metric"
        svg = lift_chart(
            lift_rows, chart_id=f"lift-{experiment.key}", level=view.level, title=title
        )
        lift_svg = _inline(svg)
    return render(
        "report.html",
        view=view,
        sections=sections,
        guardrail_sections=guardrail_sections,
        lift_svg=lift_svg,
        standalone=standalone,
        access=access,
    )


def dashboard_html(items: Sequence[tuple[Experiment, ExperimentResults]]) -> str:
    """The list of every experiment with its primary metric's lift and verdict badge."""
    rows = [dashboard_row(e, r) for e, r in items]
    chart_rows: list[LiftRow] = []
    for experiment, results in items:
        if results.primary is not None:
            chart_rows += _lift_rows(experiment, results.primary, prefix=f"{experiment.key}: ")
    chart = None
    if chart_rows:
        title = "Primary metric lift of every experiment"
        svg = lift_chart(chart_rows, chart_id="lift-dashboard", level="confidence", title=title)
        chart = _inline(svg)
    return render("dashboard.html", rows=rows, chart=chart)


def not_found_html(key: str) -> str:
    return render("not_found.html", key=key)


def login_html(next_path: str, error: str | None = None) -> str:
    return render("login.html", next=next_path, error=error)


def share_message_html(
    title: str, message: str, *, link: str | None = None, back: str | None = None
) -> str:
    """A short page about a share link: made (with its ``link``), expired, revoked, unknown."""
    return render("share_message.html", title=title, message=message, link=link, back=back)
