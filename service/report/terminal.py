"""The read-out as rich text and tables for ``abacus results KEY``: the report's figures, no charts.

It shows what :mod:`service.report.views` prepares for the HTML report, each metric's table
turned sideways (a column per variant) so it fits a terminal.
"""

from __future__ import annotations

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from experiments.definitions import Experiment
from service.readout.model import ExperimentResults, Verdict, VerdictKind
from service.report.views import MetricView, report_view

__all__ = ["results_renderables"]

_STYLE = {
    VerdictKind.WINNING: "bold green",
    VerdictKind.LOSING: "bold red",
    VerdictKind.INCONCLUSIVE: "bold",
    VerdictKind.SRM: "bold yellow",
    VerdictKind.NOT_ENOUGH_DATA: "dim",
}


def _verdict(verdict: Verdict) -> Text:
    return Text.assemble((f"[{verdict.badge}] ", _STYLE[verdict.kind]), verdict.sentence)


def _table(view: MetricView) -> Table:
    title = f"{view.title}{' (primary)' if view.metric.primary else ''}"
    table = Table(
        "",
        *(row[0].sub or row[0].main for row in view.rows),
        title=title,
        title_justify="left",
        box=box.SIMPLE_HEAD,
    )
    for index, header in enumerate(view.headers[1:], start=1):
        table.add_row(header, *(str(row[index]) for row in view.rows))
    return table


def results_renderables(experiment: Experiment, results: ExperimentResults) -> RenderableType:
    """The read-out as rich text and tables."""
    view = report_view(experiment, results)
    verdict = results.verdict
    parts: list[RenderableType] = [
        Text(
            f"{view.title} ({experiment.key}) · {experiment.status.value} · started {view.started}",
            style="bold",
        ),
        _verdict(verdict),
    ]
    if results.srm.mismatch:
        parts.append(
            Text(
                "SAMPLE RATIO MISMATCH: visitors are not split as configured "
                f"({view.srm_pvalue}); do not trust these numbers.",
                style="bold yellow",
            )
        )
    if view.stopped:
        parts.append(Text(view.stopped, style="bold"))
    for alert in results.guardrail_alerts:
        parts.append(Text(f"GUARDRAIL HARMED: {alert.sentence}", style="bold red"))
    for metric in [*view.metrics, *view.guardrails]:
        parts.append(_table(metric))
        parts.append(Text(" ".join(metric.facts), style="dim"))
        parts += [_verdict(v) for v in metric.verdicts if v.sentence != verdict.sentence]
    if view.breakdown is not None:
        parts.append(Text(f"Breakdown by {view.breakdown.dimension}", style="bold"))
        parts.append(Text(view.breakdown.caveat, style="yellow"))
        for table in view.breakdown.tables:
            grid = Table(*table.headers, "Verdict", title=table.title, box=box.SIMPLE_HEAD)
            for cells, row_verdict in table.rows:
                badge = row_verdict.badge if row_verdict else ""
                grid.add_row(*(str(c) for c in cells), badge)
            parts.append(grid)
    progress = view.progress
    if progress.available and progress.required is not None:
        parts.append(Text(f"Progress: {progress.sentence} {progress.remaining}".rstrip()))
    elif progress.reason:
        parts.append(Text(f"Progress: {progress.reason}."))
    return Group(*parts)
