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

from experiments.definitions import Experiment, MetricKind
from service.api.principal import CSRF_FIELD
from service.forms import FormState
from service.jinja import render
from service.readout.model import BADGES, ExperimentResults, MetricResults, VerdictKind
from service.report.charts import (
    LiftRow,
    lift_chart,
    lift_rows,
    sequence_chart,
    sequence_lines,
)
from service.report.dashboard import DashboardQuery, select
from service.report.history import AccessView
from service.report.views import MetricView, dashboard_row, labels, report_view

__all__ = [
    "confirm_html",
    "dashboard_html",
    "experiment_form_html",
    "login_html",
    "not_found_html",
    "refused_html",
    "report_html",
    "share_message_html",
]


def _inline(svg: str) -> Markup:
    """Chart markup to insert as is: matplotlib escapes every text it writes into the SVG."""
    return Markup(svg)


@dataclass(frozen=True)
class MetricSection:
    """A metric's figures and, when it has two days with data, its daily chart."""

    view: MetricView
    chart: Markup | None
    chart_note: str | None
    chart_narrow: Markup | None = None
    """The same chart laid out for a phone (the page shows one of the two by its width)."""


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
    narrow = sequence_chart(
        lines, chart_id=f"{chart_id}-narrow", title=title, level=level, narrow=True
    )
    return MetricSection(view, _inline(svg), None, _inline(narrow))


def _lift_charts(rows: Sequence[LiftRow], chart_id: str, level: str, title: str) -> Markup:
    """The forest plot twice: for wide screens and for phones."""
    wide = lift_chart(rows, chart_id=chart_id, level=level, title=title)
    narrow = lift_chart(rows, chart_id=f"{chart_id}-narrow", level=level, title=title, narrow=True)
    return _inline(wide + narrow)


def _lift_rows(experiment: Experiment, metric: MetricResults, prefix: str = "") -> list[LiftRow]:
    return lift_rows(metric, labels(experiment), prefix)


def report_html(
    experiment: Experiment,
    results: ExperimentResults,
    *,
    standalone: bool = False,
    access: AccessView | None = None,
    csrf: str | None = None,
) -> str:
    """The report page of one experiment (``standalone`` drops the links back to the service;
    ``access`` adds the History section and, for editors, the share form; ``csrf``, the form
    token of an editor's session, adds the buttons that change it)."""
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
        lift_svg = _lift_charts(lift_rows, f"lift-{experiment.key}", view.level, title)
    return render(
        "report.html",
        view=view,
        sections=sections,
        guardrail_sections=guardrail_sections,
        lift_svg=lift_svg,
        standalone=standalone,
        access=access,
        csrf=None if standalone else csrf,
        CSRF_FIELD=CSRF_FIELD,
    )


def dashboard_html(
    items: Sequence[tuple[Experiment, ExperimentResults]],
    query: DashboardQuery | None = None,
    *,
    editor: bool = False,
    signed_in: bool = False,
) -> str:
    """The experiments ``query`` selects (every one not archived by default) with their primary
    metric's lift and verdict badge; ``editor`` adds the link to the create form, ``signed_in``
    the sign-out button of a browser session."""
    query = query or DashboardQuery()
    listing = select(items, query)
    rows = [dashboard_row(e, r) for e, r in listing.items]
    chart_rows: list[LiftRow] = []
    for experiment, results in listing.items:
        if results.primary is not None:
            chart_rows += _lift_rows(experiment, results.primary, prefix=f"{experiment.key}: ")
    chart = None
    if chart_rows:
        title = "Primary metric lift of every experiment"
        chart = _lift_charts(chart_rows, "lift-dashboard", "confidence", title)
    return render(
        "dashboard.html",
        signed_in=signed_in,
        rows=rows,
        chart=chart,
        query=query,
        listing=listing,
        editor=editor,
        statuses=["draft", "running", "paused", "stopped"],
        verdicts=[(k.value, BADGES[k]) for k in VerdictKind],
        sorts=[
            ("created", "Created"),
            ("started", "Start date"),
            ("visitors", "Visitors"),
            ("lift", "Lift"),
        ],
    )


def not_found_html(key: str) -> str:
    return render("not_found.html", key=key)


def login_html(next_path: str, error: str | None = None) -> str:
    return render("login.html", next=next_path, error=error)


def share_message_html(
    title: str, message: str, *, link: str | None = None, back: str | None = None
) -> str:
    """A short page about a share link: made (with its ``link``), expired, revoked, unknown."""
    return render("share_message.html", title=title, message=message, link=link, back=back)


def experiment_form_html(form: FormState, draft: Experiment | None, csrf: str) -> str:
    """The create form (``draft`` None) or the edit form of ``draft``, with ``form``'s values
    and errors."""
    return render(
        "experiment_form.html",
        form=form,
        draft=draft,
        csrf=csrf,
        CSRF_FIELD=CSRF_FIELD,
        kinds=[k.value for k in MetricKind],
    )


def confirm_html(
    experiment: Experiment, action: str, fields: Mapping[str, str], path: str, csrf: str
) -> str:
    """The page that asks before ``action`` (start, stop, delete), posting ``fields`` again."""
    names = labels(experiment)
    winner = fields.get("winner") or None
    return render(
        "confirm.html",
        experiment=experiment,
        title=experiment.name or experiment.key,
        action=action,
        fields=fields,
        path=path,
        winner=names.get(winner, winner) if winner else None,
        csrf=csrf,
        CSRF_FIELD=CSRF_FIELD,
    )


def refused_html(message: str, key: str | None) -> str:
    """A change the rules refused: the API's message, and the way back."""
    return render("refused.html", message=message, key=key)
