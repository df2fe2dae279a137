"""The statistical read-out of one experiment, computed from its stored sufficient statistics.

Everything numeric comes from the ``stats`` package; this module only turns stored totals into
``stats`` summaries and the results into JSON. Undefined numbers are ``null`` with a reason.

Multiple testing: the primary metric's comparisons (one per non-control variant) form one
family, every secondary metric's comparisons another; p-values are Holm-adjusted within each
family and ``significant`` uses the adjusted p-value.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any, Literal

import stats
from experiments.definitions import Experiment, Metric, MetricKind
from experiments.store import VariantTotals

__all__ = ["build_results", "summary_of"]

Summary = stats.Proportion | stats.MeanSummary | stats.RatioSummary


def _num(x: float | None) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return float(x)


def _pair(ci: tuple[float, float] | None) -> list[float | None] | None:
    if ci is None or not all(math.isfinite(v) for v in ci):
        return None
    return [float(ci[0]), float(ci[1])]


def summary_of(metric: Metric, totals: VariantTotals) -> Summary:
    """The stats summary of ``metric`` for one variant's stored totals."""
    if metric.kind is MetricKind.CONVERSION:
        return stats.Proportion(
            conversions=round(totals.sums.get(metric.name, 0.0)), visitors=totals.n
        )
    if metric.kind is MetricKind.RATIO:
        num, den = metric.numerator or "", metric.denominator or ""
        return stats.RatioSummary(
            n=totals.n,
            numerator_sum=totals.sums.get(num, 0.0),
            numerator_sum_squares=totals.sum_squares.get(num, 0.0),
            denominator_sum=totals.sums.get(den, 0.0),
            denominator_sum_squares=totals.sum_squares.get(den, 0.0),
            cross_sum=totals.cross.get(metric.name, 0.0),
        )
    return stats.MeanSummary(
        n=totals.n,
        sum=totals.sums.get(metric.name, 0.0),
        sum_squares=totals.sum_squares.get(metric.name, 0.0),
    )


def _compare(
    control: Summary, treatment: Summary, confidence_level: float
) -> stats.ComparisonResult:
    if isinstance(control, stats.Proportion) and isinstance(treatment, stats.Proportion):
        return stats.compare_proportions(
            control=control, treatment=treatment, confidence_level=confidence_level
        )
    if isinstance(control, stats.RatioSummary) and isinstance(treatment, stats.RatioSummary):
        return stats.compare_ratios(
            control=control, treatment=treatment, confidence_level=confidence_level
        )
    assert isinstance(control, stats.MeanSummary) and isinstance(treatment, stats.MeanSummary)
    return stats.compare_means(
        control=control, treatment=treatment, confidence_level=confidence_level
    )


def _cumulative(daily: Sequence[tuple[str, list[VariantTotals]]]) -> list[list[VariantTotals]]:
    running: list[VariantTotals] | None = None
    out: list[list[VariantTotals]] = []
    for _, day in daily:
        if running is None:
            running = [VariantTotals() for _ in day]
        for acc, inc in zip(running, day, strict=True):
            acc.n += inc.n
            for src, dst in (
                (inc.sums, acc.sums),
                (inc.sum_squares, acc.sum_squares),
                (inc.cross, acc.cross),
            ):
                for k, v in src.items():
                    dst[k] = dst.get(k, 0.0) + v
        out.append(
            [VariantTotals(t.n, dict(t.sums), dict(t.sum_squares), dict(t.cross)) for t in running]
        )
    return out


def _total_and_value(summary: Summary) -> tuple[float, float | None]:
    if isinstance(summary, stats.Proportion):
        total = float(summary.conversions)
        return total, (total / summary.visitors if summary.visitors else None)
    if isinstance(summary, stats.RatioSummary):
        num, den = summary.numerator_sum, summary.denominator_sum
        return num, (num / den if den else None)
    return summary.sum, (summary.sum / summary.n if summary.n else None)


def _metric_block(
    experiment: Experiment,
    metric: Metric,
    totals: list[VariantTotals],
    cumulative: list[list[VariantTotals]],
    dates: list[str],
) -> dict[str, Any]:
    summaries = [summary_of(metric, t) for t in totals]
    level = experiment.confidence_level
    rows: list[dict[str, Any]] = []
    for index, (variant, summary) in enumerate(zip(experiment.variants, summaries, strict=True)):
        total, value = _total_and_value(summary)
        row: dict[str, Any] = {
            "variant": variant.key,
            "visitors": totals[index].n,
            "total": round(total, 6),
            "value": _num(value),
        }
        if index > 0:
            row.update(_comparison(summaries[0], summary, metric, level))
            row.update(_sequential(metric, cumulative, index, level, dates))
        rows.append(row)
    return {
        "name": metric.name,
        "kind": metric.kind.value,
        "primary": metric.primary,
        "variants": rows,
    }


def _comparison(
    control: Summary, treatment: Summary, metric: Metric, level: float
) -> dict[str, Any]:
    reasons: list[str] = []
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = _compare(control, treatment, level)
        chance: float | None = None
        loss: float | None = None
        if metric.kind is MetricKind.RATIO:
            reasons.append("chance to beat control is not computed for ratio metrics")
        else:
            assert not isinstance(control, stats.RatioSummary)
            assert not isinstance(treatment, stats.RatioSummary)
            bayes = stats.chance_to_beat_control(control=control, treatment=treatment)
            chance, loss = _num(bayes.chance_to_beat_control), _num(bayes.expected_loss)
            if bayes.reason:
                reasons.append(bayes.reason)
    if result.reason:
        reasons.insert(0, result.reason)
    reasons += [str(w.message) for w in caught if str(w.message) not in reasons]
    return {
        "absolute_lift": _num(result.absolute_lift),
        "absolute_ci": _pair(result.absolute_ci),
        "relative_lift": _num(result.relative_lift),
        "relative_ci": _pair(result.relative_ci),
        "statistic": _num(result.statistic),
        "pvalue": _num(result.pvalue),
        "chance_to_beat_control": chance,
        "expected_loss": loss,
        "method": result.method,
        "reasons": list(dict.fromkeys(reasons)),
    }


def _sequential(
    metric: Metric,
    cumulative: list[list[VariantTotals]],
    index: int,
    level: float,
    dates: list[str],
) -> dict[str, Any]:
    if metric.kind is MetricKind.RATIO or not cumulative:
        return {"sequential_pvalue": None, "series": []}
    looks: list[Any] = []  # (control, treatment) pairs of one summary type
    for day in cumulative:
        c, t = summary_of(metric, day[0]), summary_of(metric, day[index])
        looks.append((c, t))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        seq = stats.msprt(looks=looks, confidence_level=level)
        series = []
        for date, (c, t), p, cs in zip(dates, looks, seq.pvalues, seq.relative_cs, strict=True):
            lift = _compare(c, t, level).relative_lift
            series.append(
                {
                    "date": date,
                    "relative_lift": _num(lift),
                    "relative_cs": _pair(cs),
                    "sequential_pvalue": _num(p),
                }
            )
    return {"sequential_pvalue": _num(seq.pvalue), "series": series}


def _adjust(blocks: list[dict[str, Any]], alpha: float) -> None:
    families = [[b for b in blocks if b["primary"]], [b for b in blocks if not b["primary"]]]
    for family in families:
        rows = [row for b in family for row in b["variants"][1:]]
        if not rows:
            continue
        raw = [math.nan if r["pvalue"] is None else r["pvalue"] for r in rows]
        adjusted = stats.adjust_pvalues(raw, method="holm")
        for row, p in zip(rows, adjusted, strict=True):
            row["adjusted_pvalue"] = _num(p)
            row["significant"] = bool(row["adjusted_pvalue"] is not None and p < alpha)


def _progress(
    experiment: Experiment, blocks: list[dict[str, Any]], totals: list[VariantTotals], now: float
) -> dict[str, Any]:
    primary = next((b for b in blocks if b["primary"]), None)
    days = (now - experiment.started_at) / 86400 if experiment.started_at else None
    out: dict[str, Any] = {
        "minimum_detectable_effect": experiment.minimum_detectable_effect,
        "days_running": _num(days),
        "required_per_variant": None,
        "visitors_per_variant": [t.n for t in totals],
        "fraction": None,
        "days_remaining": None,
        "reason": None,
    }
    if primary is None:
        out["reason"] = "no primary metric"
        return out
    control = primary["variants"][0]
    baseline = control["value"]
    if baseline is None or baseline == 0:
        out["reason"] = "the control has no data for the primary metric yet"
        return out
    kind: Literal["conversion", "mean"] = (
        "conversion" if primary["kind"] == "conversion" else "mean"
    )
    std: float | None = None
    if kind == "mean":
        metric = next(m for m in experiment.metrics if m.primary)
        s = summary_of(metric, totals[0])
        if isinstance(s, stats.MeanSummary) and s.variance > 0:  # NaN below 2 visitors
            std = math.sqrt(s.variance)
        if std is None:
            out["reason"] = "the primary metric has no variance yet"
            return out
    if kind == "conversion" and baseline * (1 + experiment.minimum_detectable_effect) >= 1:
        out["reason"] = "the planned effect would push the rate past 100%"
        return out
    required = stats.sample_size(
        baseline=baseline,
        mde=experiment.minimum_detectable_effect,
        relative=True,
        kind=kind,
        std=std,
        alpha=1 - experiment.confidence_level,
        variants=len(experiment.variants),
    )
    out["required_per_variant"] = required
    current = [t.n for t in totals]
    out["fraction"] = min(current) / required if required else None
    if days and days > 0:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            remaining = stats.days_remaining(
                required_per_variant=required, current_per_variant=current, days_elapsed=days
            )
        out["days_remaining"] = _num(remaining)
        if remaining is None:
            out["reason"] = "; ".join(str(w.message) for w in caught) or "no traffic to project"
    return out


def build_results(
    experiment: Experiment,
    totals: list[VariantTotals],
    daily: Sequence[tuple[str, list[VariantTotals]]],
    now: float,
) -> dict[str, Any]:
    """The JSON read-out of ``experiment`` (see DESIGN.md for its shape)."""
    visitors = [t.n for t in totals]
    srm: dict[str, Any] = {"visitors": dict(zip(experiment.variant_keys, visitors, strict=True))}
    if sum(visitors) > 0:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)
            result = stats.srm_test(
                visitors=visitors, weights=[v.weight for v in experiment.variants]
            )
        srm.update(
            pvalue=_num(result.pvalue),
            mismatch=bool(result.mismatch),
            expected=[_num(e) for e in result.expected],
            reason=result.reason,
        )
    else:
        srm.update(pvalue=None, mismatch=False, expected=None, reason="no visitors yet")
    dates = [
        datetime.strptime(d, "%Y%m%d").replace(tzinfo=UTC).date().isoformat() for d, _ in daily
    ]
    cumulative = _cumulative(daily)
    blocks = [_metric_block(experiment, m, totals, cumulative, dates) for m in experiment.metrics]
    _adjust(blocks, 1 - experiment.confidence_level)
    return {
        "experiment": experiment.key,
        "name": experiment.name,
        "status": experiment.status.value,
        "winner": experiment.winner,
        "confidence_level": experiment.confidence_level,
        "generated_at": datetime.fromtimestamp(now, UTC).isoformat(),
        "srm": srm,
        "progress": _progress(experiment, blocks, totals, now),
        "metrics": blocks,
    }
