"""Plots of the typed read-out for notebooks: the report's two charts on a matplotlib Axes.

:func:`plot_lift` draws each variant's relative lift with its confidence interval (a forest
plot, one row per metric and variant); :func:`plot_cumulative_lift` draws a metric's cumulative
relative lift day by day inside its always-valid confidence sequence. Both read an
:class:`~service.readout.model.ExperimentResults` (``Client.results(key)``) and draw with the
same code as the report's charts, so a notebook shows what the report shows. Pass ``ax`` to draw
into a figure of your own; otherwise a new pyplot figure is made (shown inline in Jupyter).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from service.readout.model import ExperimentResults, MetricResults
from service.report.charts import draw_lift, draw_sequence, lift_rows, sequence_lines

if TYPE_CHECKING:
    from matplotlib.axes import Axes

__all__ = ["plot_cumulative_lift", "plot_lift"]


def _axes(ax: Axes | None, height: float) -> Axes:
    if ax is not None:
        return ax
    import matplotlib.pyplot as plt

    _, created = plt.subplots(figsize=(9, height), layout="constrained")
    return created


def _level(results: ExperimentResults) -> str:
    return f"{results.confidence_level:.0%}"


def _metric(results: ExperimentResults, name: str | None) -> MetricResults:
    if name is None:
        if results.primary is None:
            raise ValueError(f"experiment {results.experiment!r} has no primary metric; name one")
        return results.primary
    for metric in results.metrics:
        if metric.name == name:
            return metric
    raise ValueError(f"metric must be one of {[m.name for m in results.metrics]}, got {name!r}")


def plot_lift(
    results: ExperimentResults, *, metrics: Sequence[str] | None = None, ax: Axes | None = None
) -> Axes:
    """Relative lift of every variant over the control with its confidence interval.

    ``metrics`` picks the metrics to show (default: all, in the read-out's order). A
    comparison without enough data is written as such instead of drawn.
    """
    chosen = results.metrics if metrics is None else [_metric(results, m) for m in metrics]
    rows = [row for metric in chosen for row in lift_rows(metric, {})]
    axes = _axes(ax, 1.0 + 0.4 * max(len(rows), 1))
    draw_lift(axes, rows, level=_level(results))
    axes.set_title(f"{results.experiment}: relative lift")
    return axes


def plot_cumulative_lift(
    results: ExperimentResults, metric: str | None = None, *, ax: Axes | None = None
) -> Axes:
    """A metric's cumulative relative lift by day inside its confidence sequence.

    ``metric`` defaults to the primary one. Raises ValueError when no variant has two days
    with a defined sequence yet (or for a ratio metric, which has no sequential test).
    """
    chosen = _metric(results, metric)
    lines = sequence_lines(chosen, {})
    if not lines:
        raise ValueError(
            f"metric {chosen.name!r} has no daily confidence sequence with two days yet"
            + (" (ratio metrics have no sequential test)" if chosen.kind == "ratio" else "")
        )
    axes = _axes(ax, 3.2)
    draw_sequence(axes, lines, level=_level(results))
    axes.set_title(f"{results.experiment}: cumulative lift of {chosen.name}", pad=30)
    return axes
