"""Looks for the sequential tests: one estimate and its variance per look.

Both peeking-safe procedures (:mod:`stats.sequential`, :mod:`stats.group_sequential`) work on a
stream of (estimate, variance) points. This module validates the two ways of giving looks, a
stream of :class:`~stats.summaries.Estimate` or cumulative (control, treatment) summaries of one
kind, and turns the summaries into the absolute- and relative-lift streams with the same
estimates and variances as the fixed-horizon comparisons.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from stats._validate import check_finite, check_sequence
from stats.cuped import cuped_comparison
from stats.errors import InvalidInputError
from stats.frequentist import means_comparison, proportions_comparison, ratios_comparison
from stats.results import ComparisonResult
from stats.summaries import CupedSummary, Estimate, MeanSummary, Proportion, RatioSummary, Summary

__all__ = ["LiftKind", "Point", "check_plan", "estimate_points", "summary_points"]

LiftKind = Literal["absolute", "relative"]

_KINDS = (Proportion, MeanSummary, RatioSummary, CupedSummary)


@dataclass(frozen=True)
class Point:
    """One look: estimate, its variance, visitors per variant, and why it is unusable."""

    value: float
    variance: float
    visitors: float
    problem: str | None
    control: float = 1.0


def check_plan(lift: object, null: object) -> LiftKind:
    """Validate the tested lift and its null value."""
    check_finite("null", null)
    if lift == "absolute":
        return "absolute"
    if lift == "relative":
        return "relative"
    raise InvalidInputError(f"lift must be 'absolute' or 'relative', got {lift!r}")


def estimate_points(estimates: Sequence[Estimate], *, need_visitors: bool) -> list[Point]:
    """Points of a validated stream of estimates."""
    points = []
    for index, estimate in enumerate(estimates):
        if need_visitors and estimate.visitors is None:
            raise InvalidInputError(
                f"estimates[{index}].visitors must be given to tune to planned_visitors, got None"
            )
        visitors = math.nan if estimate.visitors is None else estimate.visitors
        points.append(Point(estimate.difference, estimate.variance, visitors, None))
    return points


def _validated_looks(looks: object) -> list[tuple[Summary, Summary]]:
    items = check_sequence("looks", looks)
    pairs: list[tuple[Summary, Summary]] = []
    for index, item in enumerate(items):
        pair = tuple(check_sequence(f"looks[{index}]", item))
        if len(pair) != 2:
            raise InvalidInputError(
                f"looks[{index}] must be a (control, treatment) pair, got {len(pair)} items"
            )
        pairs.append(pair)  # type: ignore[arg-type]
    kind = type(pairs[0][0])
    if kind not in _KINDS or any(type(summary) is not kind for pair in pairs for summary in pair):
        raise InvalidInputError(
            "looks must hold summaries of one kind (Proportion, MeanSummary, RatioSummary or "
            f"CupedSummary), got {sorted({type(s).__name__ for pair in pairs for s in pair})}"
        )
    for index in range(1, len(pairs)):
        for side, name in enumerate(("control", "treatment")):
            before, after = _visitors(pairs[index - 1][side]), _visitors(pairs[index][side])
            if after < before:
                raise InvalidInputError(
                    f"looks must be cumulative: {name} visitors at looks[{index}] must be >= "
                    f"{before} (looks[{index - 1}]), got {after}"
                )
    return pairs


def _visitors(summary: Summary) -> int:
    return summary.visitors if isinstance(summary, Proportion) else summary.n


def _compare(control: Summary, treatment: Summary, level: float) -> ComparisonResult:
    if isinstance(control, Proportion) and isinstance(treatment, Proportion):
        return proportions_comparison(control, treatment, level)
    if isinstance(control, MeanSummary) and isinstance(treatment, MeanSummary):
        return means_comparison(control, treatment, level)
    if isinstance(control, RatioSummary) and isinstance(treatment, RatioSummary):
        return ratios_comparison(control, treatment, level)
    assert isinstance(control, CupedSummary) and isinstance(treatment, CupedSummary)
    return cuped_comparison(control, treatment, level)


def _size_problem(control: Summary, treatment: Summary) -> str | None:
    minimum = 1 if isinstance(control, Proportion) else 2
    for name, summary in (("control", control), ("treatment", treatment)):
        n = _visitors(summary)
        if n == 0:
            return f"{name} has no visitors"
        if n < minimum:
            return f"{name} has fewer than 2 visitors"
    return None


def summary_points(
    looks: Sequence[tuple[Summary, Summary]], level: float
) -> tuple[list[Point], list[Point]]:
    """The absolute- and relative-lift streams of validated cumulative looks."""
    absolute: list[Point] = []
    relative: list[Point] = []
    for control, treatment in _validated_looks(looks):
        visitors = (_visitors(control) + _visitors(treatment)) / 2.0
        problem = _size_problem(control, treatment)
        if problem is not None:
            absolute.append(Point(math.nan, math.nan, visitors, problem))
            relative.append(Point(math.nan, math.nan, visitors, problem))
            continue
        result = _compare(control, treatment, level)
        variance = result.standard_error**2
        if not variance > 0.0:
            problem = "neither variant varies yet"
        elif not math.isfinite(result.absolute_lift):
            problem = "the lift is undefined (a ratio's denominator sums to 0)"
        absolute.append(Point(result.absolute_lift, variance, visitors, problem))
        relative_variance = result.relative_standard_error**2
        if problem is None and result.control_value == 0.0:
            problem = "the control value is 0, so the relative lift is undefined"
        elif problem is None and not relative_variance > 0.0:
            problem = "the relative lift's variance is zero"
        relative.append(
            Point(
                result.relative_lift,
                relative_variance,
                visitors,
                problem,
                control=result.control_value,
            )
        )
    return absolute, relative
