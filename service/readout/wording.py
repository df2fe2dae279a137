"""How the read-out words its numbers: metric names, percentages, intervals and p-values.

Shared by the verdict sentences and the report tables, so a lift reads the same everywhere.
"""

from __future__ import annotations

import math

from service.readout.model import Interval

__all__ = [
    "DASH",
    "describe_pvalue",
    "format_chance",
    "format_interval",
    "format_level",
    "format_lift",
    "format_number",
    "format_pvalue",
    "metric_phrase",
    "with_unit",
]

DASH = "—"
CURRENCY_SYMBOLS = frozenset("£$€¥₹")


def format_number(x: float | None, *, signed: bool = False) -> str:
    """A figure to read: ``1,234``, ``12.40``, ``0.0312``; a dash when undefined."""
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


def with_unit(text: str, unit: str | None) -> str:
    """A figure with its unit: a currency symbol before it (``£12.40``, ``-£3.10``), any other
    unit after it (``1.25 orders``)."""
    if unit is None or text == DASH:
        return text
    if unit in CURRENCY_SYMBOLS:
        sign = text[0] if text[0] in "+-" else ""
        return f"{sign}{unit}{text[len(sign) :]}"
    return f"{text} {unit}"


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


def format_level(confidence_level: float) -> str:
    """A confidence level as ``95%``."""
    return f"{100 * confidence_level:g}%"


def describe_pvalue(p: float | None) -> str:
    """``p = 0.0312`` or ``p < 0.0001``, for sentences."""
    shown = format_pvalue(p)
    return f"p {shown.replace('<', '< ')}" if shown.startswith("<") else f"p = {shown}"
