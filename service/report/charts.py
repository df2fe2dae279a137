"""Report charts drawn by matplotlib and returned as inline SVG markup.

SVG needs no JavaScript and no network, scales with the page, and keeps a report one
self-contained file. Figures are built with the object-oriented API (``Figure``, never
``pyplot``), so no global figure state is shared between threads; the few rc settings that
shape the SVG are applied under a lock. Callers run these functions in a worker thread.

- :func:`lift_chart`: a forest plot of relative lifts with their intervals, one row per
  metric and variant (or per experiment on the dashboard);
- :func:`sequence_chart`: the cumulative relative lift over days with its confidence sequence.
"""

from __future__ import annotations

import io
import math
import re
import textwrap
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any, Literal

import matplotlib
import matplotlib.dates as mdates
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.ticker import FuncFormatter, MaxNLocator
from matplotlib.typing import RcKeyType

from service.readout.model import MetricResults, VerdictKind
from service.readout.wording import metric_phrase

__all__ = [
    "NARROW_WIDTH_INCHES",
    "LiftRow",
    "SequenceLine",
    "draw_lift",
    "draw_sequence",
    "lift_chart",
    "lift_rows",
    "sequence_chart",
    "sequence_lines",
]

Tone = Literal["winning", "losing", "inconclusive", "srm", "not_enough_data"]

COLOURS: dict[str, str] = {
    "winning": "#1a7f37",
    "losing": "#cf222e",
    "inconclusive": "#57606a",
    "srm": "#9a6700",
    "not_enough_data": "#8c959f",
}
LINE_COLOURS = ("#0969da", "#8250df", "#bf3989", "#1b7c83", "#953800")
_RC: dict[RcKeyType, Any] = {
    # names come from users: "$5 vs $10" is text, and "B $x^$" must not be parsed as maths
    "text.parse_math": False,
    "svg.fonttype": "none",
    "font.family": "sans-serif",
    "font.sans-serif": ["DejaVu Sans", "Arial", "Helvetica"],
    "font.size": 10,
    "axes.spines.top": False,
    "axes.spines.right": False,
    "axes.edgecolor": "#8c959f",
    "axes.labelcolor": "#24292f",
    "xtick.color": "#57606a",
    "ytick.color": "#24292f",
}
_LOCK = threading.Lock()


@dataclass(frozen=True)
class LiftRow:
    """One row of a forest plot: a label, the lift and its interval (None when undefined)."""

    label: str
    lift: float | None
    interval: tuple[float, float] | None
    tone: Tone


@dataclass(frozen=True)
class SequenceLine:
    """One variant's cumulative relative lift and confidence sequence, day by day."""

    label: str
    dates: Sequence[date]
    lifts: Sequence[float | None]
    intervals: Sequence[tuple[float, float] | None]


def _percent_axis(value: float, _position: object) -> str:
    return f"{100 * value:+.0f}%" if value else "0%"


NARROW_WIDTH_INCHES = 3.6
"""The width of the narrow charts phones are shown: 259 pt, so on a 390 px screen (about 340
px for the chart) the smallest text, 8 pt, is drawn at about 10.5 px."""


def _to_svg(figure: Figure, chart_id: str, title: str, *, narrow: bool = False) -> str:
    buffer = io.StringIO()
    settings: dict[RcKeyType, Any] = {"svg.hashsalt": chart_id, **_RC}
    # A narrow chart keeps its exact size (the constrained layout fits everything inside it),
    # so its text scales by a known factor on a phone.
    bbox = None if narrow else "tight"
    with matplotlib.rc_context(settings):
        figure.savefig(buffer, format="svg", bbox_inches=bbox, metadata={"Date": None})
    svg = buffer.getvalue()
    svg = svg[svg.index("<svg") :]
    # Drop the fixed size so the chart follows its container (the viewBox keeps the aspect);
    # matplotlib escapes every text it writes, so the markup is safe to inline.
    svg = re.sub(r'\s(width|height)="[\d.]+pt"', "", svg, count=2)
    label = title.replace("&", "&amp;").replace('"', "&quot;").replace("<", "&lt;")
    kind = "chart-narrow" if narrow else "chart"
    return svg.replace(
        "<svg ", f'<svg class="{kind}" role="img" aria-label="{label}" id="{chart_id}" ', 1
    )


def _new_figure(width: float, height: float) -> Figure:
    with matplotlib.rc_context(_RC):
        return Figure(figsize=(width, height), dpi=100, layout="constrained")


def lift_chart(
    rows: Sequence[LiftRow], *, chart_id: str, title: str, level: str, narrow: bool = False
) -> str:
    """A forest plot of relative lifts: a dot per row, its interval as a bar, zero marked.

    ``narrow``: the phone layout, :data:`NARROW_WIDTH_INCHES` wide, each row's label written
    above its bar instead of beside it.
    """
    with _LOCK:
        if narrow:
            figure = _new_figure(NARROW_WIDTH_INCHES, 1.1 + 0.7 * max(len(rows), 1))
        else:
            figure = _new_figure(9, 1.0 + 0.4 * max(len(rows), 1))
        with matplotlib.rc_context(_RC):
            draw_lift(figure.add_subplot(), rows, level=level, narrow=narrow)
        return _to_svg(figure, chart_id, title, narrow=narrow)


def _wrapped(text: str, width: int) -> str:
    return "\n".join(textwrap.wrap(text, width)) or text


def draw_lift(axes: Axes, rows: Sequence[LiftRow], *, level: str, narrow: bool = False) -> None:
    """Draw the forest plot of :func:`lift_chart` onto ``axes``."""
    positions = list(range(len(rows)))[::-1]
    bounds: list[float] = [0.0]
    for y, row in zip(positions, rows, strict=True):
        colour = COLOURS[row.tone]
        if row.lift is None or row.interval is None:
            axes.text(
                0, y, "  not enough data", va="center", color=colour, fontsize=9, style="italic"
            )
            continue
        low, high = row.interval
        axes.plot([low, high], [y, y], color=colour, linewidth=2.2, solid_capstyle="butt")
        axes.plot([row.lift], [y], "o", color=colour, markersize=7)
        if not narrow:  # the narrow layout writes the value in the row's label
            axes.text(
                high,
                y + 0.22,
                f" {100 * row.lift:+.1f}%",
                color=colour,
                fontsize=8.5,
                va="bottom",
                ha="right",
            )
        bounds += [low, high]
    axes.axvline(0, color="#24292f", linewidth=1)
    low, high = min(bounds), max(bounds)
    pad = 0.08 * (high - low or 0.2)
    axes.set_xlim(low - pad, high + pad)
    axes.set_ylim(-0.7, len(rows) - 0.3 + (0.4 if narrow else 0))
    if narrow:
        axes.set_yticks([])
        for y, row in zip(positions, rows, strict=True):
            value = "" if row.lift is None else f": {100 * row.lift:+.1f}%"
            axes.text(
                0.0,
                y + 0.18,
                _wrapped(row.label + value, 46),
                transform=axes.get_yaxis_transform(),
                fontsize=8,
                va="bottom",
                color="#24292f",
            )
        axes.xaxis.set_major_locator(MaxNLocator(nbins=4))
    else:
        axes.set_yticks(positions, [r.label for r in rows])
    axes.xaxis.set_major_formatter(FuncFormatter(_percent_axis))
    xlabel = f"relative lift over control, with its {level} interval"
    axes.set_xlabel(_wrapped(xlabel, 44) if narrow else xlabel)
    axes.grid(axis="x", color="#d0d7de", linewidth=0.6)
    axes.set_axisbelow(True)


def _legend(label: str, narrow: bool) -> str:
    return _wrapped(label, 38) if narrow else label


def _visible_range(lines: Sequence[SequenceLine]) -> tuple[float, float]:
    """A y range that shows the settled part of each band; the first days' bands are huge."""
    values: list[float] = [0.0]
    for line in lines:
        known = [i for i in line.intervals if i is not None]
        settled = known[len(known) // 4 :]
        values += [v for i in settled for v in i]
        values += [v for v in line.lifts[len(line.lifts) // 4 :] if v is not None]
    finite = [v for v in values if math.isfinite(v)]
    low, high = min(finite), max(finite)
    pad = 0.1 * (high - low or 0.2)
    return low - pad, high + pad


def sequence_chart(
    lines: Sequence[SequenceLine], *, chart_id: str, title: str, level: str, narrow: bool = False
) -> str:
    """Cumulative relative lift per day with its always-valid confidence sequence as a band
    (``narrow``: the phone layout, the legend in one column under the title)."""
    with _LOCK:
        if narrow:
            figure = _new_figure(NARROW_WIDTH_INCHES, 2.6 + 0.3 * len(lines))
        else:
            figure = _new_figure(9, 3.2)
        with matplotlib.rc_context(_RC):
            draw_sequence(figure.add_subplot(), lines, level=level, narrow=narrow)
        return _to_svg(figure, chart_id, title, narrow=narrow)


def draw_sequence(
    axes: Axes, lines: Sequence[SequenceLine], *, level: str, narrow: bool = False
) -> None:
    """Draw the lifts and confidence sequences of :func:`sequence_chart` onto ``axes``."""
    for index, line in enumerate(lines):
        colour = LINE_COLOURS[index % len(LINE_COLOURS)]
        nan = math.nan
        lows = [i[0] if i else nan for i in line.intervals]
        highs = [i[1] if i else nan for i in line.intervals]
        lifts = [nan if v is None else v for v in line.lifts]
        days = mdates.date2num(list(line.dates))  # type: ignore[no-untyped-call]
        axes.fill_between(
            days,
            lows,
            highs,
            color=colour,
            alpha=0.15,
            linewidth=0,
            label=_legend(f"{line.label}: {level} confidence sequence", narrow),
        )
        axes.plot(
            days,
            lifts,
            color=colour,
            linewidth=2,
            marker="o",
            markersize=3,
            label=_legend(f"{line.label}: cumulative lift", narrow),
        )
    axes.axhline(0, color="#24292f", linewidth=1)
    axes.set_ylim(*_visible_range(lines))
    axes.yaxis.set_major_formatter(FuncFormatter(_percent_axis))
    axes.set_ylabel("relative lift")
    axes.grid(color="#d0d7de", linewidth=0.6)
    axes.set_axisbelow(True)
    columns = 1 if narrow else 2
    axes.legend(loc="lower left", bbox_to_anchor=(0, 1.0), ncols=columns, fontsize=8, frameon=False)
    for tick in axes.get_xticklabels():
        tick.set_rotation(0)
        tick.set_horizontalalignment("center")
    locator = mdates.AutoDateLocator(maxticks=4 if narrow else 8)  # type: ignore[no-untyped-call]
    axes.xaxis.set_major_locator(locator)
    formatter = mdates.ConciseDateFormatter(locator)  # type: ignore[no-untyped-call]
    axes.xaxis.set_major_formatter(formatter)


def lift_rows(metric: MetricResults, names: Mapping[str, str], prefix: str = "") -> list[LiftRow]:
    """The forest-plot rows of a metric's non-control variants (``names``: variant labels)."""
    rows = []
    for row in metric.treatments:
        label = metric_phrase(metric.name, metric.kind)
        if metric.direction == "lower":
            label += " (lower is better)"
        if len(metric.treatments) > 1:
            label += f" · {names.get(row.variant, row.variant)}"
        kind = row.verdict.kind if row.verdict else VerdictKind.NOT_ENOUGH_DATA
        ok = kind is not VerdictKind.NOT_ENOUGH_DATA
        rows.append(
            LiftRow(
                label=prefix + label,
                lift=row.relative_lift if ok else None,
                interval=row.relative_ci if ok else None,
                tone=kind.value,
            )
        )
    return rows


def sequence_lines(metric: MetricResults, names: Mapping[str, str]) -> list[SequenceLine]:
    """One line per non-control variant with at least two days of a defined sequence."""
    lines = []
    for row in metric.treatments:
        # Days before the sequence is defined (the first hours of traffic) are left out.
        shown = [p for p in row.series if p.relative_cs is not None]
        if len(shown) < 2:
            continue
        lines.append(
            SequenceLine(
                label=names.get(row.variant, row.variant),
                dates=[p.date for p in shown],
                lifts=[p.relative_lift for p in shown],
                intervals=[p.relative_cs for p in shown],
            )
        )
    return lines
