"""The statistical read-out of one experiment, computed from its stored sufficient statistics.

Everything numeric comes from the ``stats`` package; this module only turns stored totals into
``stats`` summaries and the results into one :class:`~service.readout.model.ExperimentResults`,
verdicts included. Undefined numbers are ``None`` with a reason.

Multiple testing: the primary metric's comparisons (one per non-control variant) form one
family, the guardrails' comparisons another and every other secondary metric's a third;
p-values are Holm-adjusted within each family and ``significant`` uses the adjusted p-value.
In a breakdown each metric's comparisons across all slices form the family.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Literal

import stats
from experiments.definitions import Direction, Experiment, Metric, MetricKind
from experiments.store import SliceTotals, VariantTotals
from service.readout.model import (
    BREAKDOWN_CAVEAT,
    Breakdown,
    ExperimentResults,
    GuardrailAlert,
    Interval,
    MetricResults,
    Progress,
    SeriesPoint,
    SliceResults,
    SRMCheck,
    VariantResult,
)
from service.readout.verdicts import (
    Context,
    comparison_verdict,
    experiment_verdict,
    guardrail_alert,
)

__all__ = ["build_results", "summary_of"]

Summary = stats.Proportion | stats.MeanSummary | stats.RatioSummary


def _num(x: float | None) -> float | None:
    if x is None or not math.isfinite(x):
        return None
    return float(x)


def _pair(ci: tuple[float, float] | None) -> Interval | None:
    if ci is None or not all(math.isfinite(v) for v in ci):
        return None
    return (float(ci[0]), float(ci[1]))


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


@dataclass(frozen=True, slots=True)
class _Comparison:
    """One variant against the control, before the multiple-testing adjustment."""

    absolute_lift: float | None
    absolute_ci: Interval | None
    relative_lift: float | None
    relative_ci: Interval | None
    statistic: float | None
    pvalue: float | None
    chance_to_beat_control: float | None
    expected_loss: float | None
    method: str
    reasons: tuple[str, ...]
    sequential_pvalue: float | None
    series: tuple[SeriesPoint, ...]


@dataclass(frozen=True, slots=True)
class _Draft:
    """A metric's rows with their comparisons, waiting for adjusted p-values and verdicts."""

    metric: Metric
    summaries: list[Summary]
    comparisons: list[_Comparison]  # one per non-control variant


def _comparison(
    control: Summary, treatment: Summary, metric: Metric, level: float, experiment: Experiment
) -> tuple[stats.ComparisonResult, float | None, float | None, list[str]]:
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
            prior = experiment.prior
            bayes = stats.chance_to_beat_control(
                control=control,
                treatment=treatment,
                prior=stats.BetaPrior(prior.a, prior.b)
                if prior is not None and isinstance(control, stats.Proportion)
                else None,
            )
            chance, loss = _num(bayes.chance_to_beat_control), _num(bayes.expected_loss)
            if metric.direction is Direction.LOWER and chance is not None:
                # better is lower: the chance the treatment is below the control, and the
                # expected loss of choosing it, E[max(treatment - control, 0)]
                chance, loss = 1.0 - chance, _num(bayes.control_expected_loss)
            if bayes.reason:
                reasons.append(bayes.reason)
    if result.reason:
        reasons.insert(0, result.reason)
    reasons += [str(w.message) for w in caught if str(w.message) not in reasons]
    return result, chance, loss, list(dict.fromkeys(reasons))


def _sequential(
    metric: Metric,
    cumulative: list[list[VariantTotals]],
    index: int,
    level: float,
    dates: list[date],
    planned_visitors: int | None,
) -> tuple[float | None, tuple[SeriesPoint, ...]]:
    if metric.kind is MetricKind.RATIO or not cumulative:
        return None, ()
    looks = [(summary_of(metric, day[0]), summary_of(metric, day[index])) for day in cumulative]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        seq = stats.msprt(looks=looks, confidence_level=level, planned_visitors=planned_visitors)
        series = tuple(
            SeriesPoint(
                date=day,
                relative_lift=_num(_compare(c, t, level).relative_lift),
                relative_cs=_pair(cs),
                sequential_pvalue=_num(p),
            )
            for day, (c, t), p, cs in zip(dates, looks, seq.pvalues, seq.relative_cs, strict=True)
        )
    return _num(seq.pvalue), series


def _draft(
    experiment: Experiment,
    metric: Metric,
    totals: list[VariantTotals],
    cumulative: list[list[VariantTotals]],
    dates: list[date],
    planned_visitors: int | None,
) -> _Draft:
    summaries = [summary_of(metric, t) for t in totals]
    level = experiment.confidence_level
    comparisons = []
    for index in range(1, len(summaries)):
        result, chance, loss, reasons = _comparison(
            summaries[0], summaries[index], metric, level, experiment
        )
        sequential_pvalue, series = _sequential(
            metric, cumulative, index, level, dates, planned_visitors
        )
        comparisons.append(
            _Comparison(
                absolute_lift=_num(result.absolute_lift),
                absolute_ci=_pair(result.absolute_ci),
                relative_lift=_num(result.relative_lift),
                relative_ci=_pair(result.relative_ci),
                statistic=_num(result.statistic),
                pvalue=_num(result.pvalue),
                chance_to_beat_control=chance,
                expected_loss=loss,
                method=result.method,
                reasons=tuple(reasons),
                sequential_pvalue=sequential_pvalue,
                series=series,
            )
        )
    return _Draft(metric, summaries, comparisons)


def _family(metric: Metric) -> str:
    """The multiple-testing family of a metric: primary, guardrail or secondary."""
    if metric.primary:
        return "primary"
    return "guardrail" if metric.guardrail else "secondary"


def _holm(pvalues: Sequence[float | None]) -> list[float | None]:
    raw = [math.nan if p is None else p for p in pvalues]
    return [_num(p) for p in stats.adjust_pvalues(raw, method="holm")] if raw else []


def _adjusted(drafts: list[_Draft]) -> tuple[list[list[float | None]], list[int]]:
    """Holm-adjusted p-values per metric and comparison within each family, and each metric's
    family size."""
    out: list[list[float | None]] = [[None] * len(d.comparisons) for d in drafts]
    sizes = [0] * len(drafts)
    for family in ("primary", "secondary", "guardrail"):
        members = [
            (m, c, comparison.pvalue)
            for m, draft in enumerate(drafts)
            if _family(draft.metric) == family
            for c, comparison in enumerate(draft.comparisons)
        ]
        for (m, c, _), p in zip(members, _holm([p for *_, p in members]), strict=True):
            out[m][c] = p
        for m, draft in enumerate(drafts):
            if _family(draft.metric) == family:
                sizes[m] = len(members)
    return out, sizes


def _uncompared(variant: str, visitors: int, summary: Summary) -> VariantResult:
    total, value = _total_and_value(summary)
    return VariantResult.uncompared(
        variant=variant, visitors=visitors, total=round(total, 6), value=_num(value)
    )


def _treatment(
    base: VariantResult, comparison: _Comparison, adjusted: float | None, alpha: float
) -> VariantResult:
    return VariantResult(
        variant=base.variant,
        visitors=base.visitors,
        total=base.total,
        value=base.value,
        absolute_lift=comparison.absolute_lift,
        absolute_ci=comparison.absolute_ci,
        relative_lift=comparison.relative_lift,
        relative_ci=comparison.relative_ci,
        statistic=comparison.statistic,
        pvalue=comparison.pvalue,
        adjusted_pvalue=adjusted,
        significant=adjusted is not None and adjusted < alpha,
        chance_to_beat_control=comparison.chance_to_beat_control,
        expected_loss=comparison.expected_loss,
        sequential_pvalue=comparison.sequential_pvalue,
        method=comparison.method,
        series=comparison.series,
        reasons=comparison.reasons,
        verdict=None,
    )


def _context(
    experiment: Experiment, metric: Metric, srm: SRMCheck, control: VariantResult
) -> Context:
    return Context(
        srm=srm,
        confidence_level=experiment.confidence_level,
        metric=metric.name,
        kind=metric.kind.value,
        control=control,
        direction=metric.direction.value,
        unit=metric.unit,
    )


def _metric(
    experiment: Experiment,
    totals: list[VariantTotals],
    draft: _Draft,
    srm: SRMCheck,
    adjusted: list[float | None],
    family_size: int,
) -> MetricResults:
    metric, alpha = draft.metric, 1 - experiment.confidence_level
    variants = experiment.variants
    bases = [
        _uncompared(v.key, t.n, s)
        for v, t, s in zip(variants, totals, draft.summaries, strict=True)
    ]
    context = _context(experiment, metric, srm, bases[0])
    rows = [bases[0]]
    for c, comparison in enumerate(draft.comparisons, start=1):
        row = _treatment(bases[c], comparison, adjusted[c - 1], alpha)
        verdict = comparison_verdict(context, row, variants[c].name or variants[c].key)
        rows.append(row.model_copy(update={"verdict": verdict}))
    return MetricResults(
        name=metric.name,
        kind=metric.kind.value,
        primary=metric.primary,
        direction=metric.direction.value,
        guardrail=metric.guardrail,
        non_inferiority_margin=metric.non_inferiority_margin,
        cap=metric.cap,
        unit=metric.unit,
        numerator=metric.numerator,
        denominator=metric.denominator,
        family_size=family_size,
        variants=tuple(rows),
    )


def _guardrail_alerts(
    experiment: Experiment, metrics: Sequence[MetricResults], srm: SRMCheck
) -> tuple[GuardrailAlert, ...]:
    by_name = {m.name: m for m in experiment.metrics}
    names = {v.key: v.name or v.key for v in experiment.variants}
    alerts = []
    for result in metrics:
        if not result.guardrail:
            continue
        context = _context(experiment, by_name[result.name], srm, result.control)
        for row in result.treatments:
            label = names[row.variant]
            alert = guardrail_alert(context, row, label, result.non_inferiority_margin)
            if alert is not None:
                alerts.append(alert)
    return tuple(alerts)


def _progress(
    experiment: Experiment, plan: _Plan, totals: list[VariantTotals], now: float
) -> Progress:
    days = (now - experiment.started_at) / 86400 if experiment.started_at else None
    current = [t.n for t in totals]
    reason, required = plan
    fraction = min(current) / required if required else None
    remaining = None
    if required is not None and days is not None and days > 0:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            remaining = stats.days_remaining(
                required_per_variant=required, current_per_variant=current, days_elapsed=days
            )
        if remaining is None:
            reason = "; ".join(str(w.message) for w in caught) or "no traffic to project"
    return Progress(
        minimum_detectable_effect=experiment.minimum_detectable_effect,
        days_running=_num(days),
        required_per_variant=required,
        visitors_per_variant=tuple(current),
        fraction=fraction,
        days_remaining=_num(remaining),
        reason=reason,
    )


_Plan = tuple[str | None, int | None]


def _plan(experiment: Experiment, totals: list[VariantTotals]) -> _Plan:
    """(reason it is undefined, required visitors per variant) for the primary metric.

    The required size also tunes the mSPRT's mixing variance, so the always-valid sequence is
    narrowest at the planned sample size.
    """
    metric = next((m for m in experiment.metrics if m.primary), None)
    if metric is None:
        return "no primary metric", None
    control = summary_of(metric, totals[0])
    baseline = _total_and_value(control)[1]
    if baseline is None or baseline == 0:
        return "the control has no data for the primary metric yet", None
    kind: Literal["conversion", "mean"] = (
        "conversion" if metric.kind is MetricKind.CONVERSION else "mean"
    )
    std: float | None = None
    if kind == "mean":
        if isinstance(control, stats.MeanSummary) and control.variance > 0:  # NaN below 2
            std = math.sqrt(control.variance)
        if std is None:
            return "the primary metric has no variance yet", None
    mde = experiment.minimum_detectable_effect
    if kind == "conversion" and baseline * (1 + mde) >= 1:
        return "the planned effect would push the rate past 100%", None
    required = stats.sample_size(
        baseline=baseline,
        mde=mde,
        relative=True,
        kind=kind,
        std=std,
        confidence_level=experiment.confidence_level,
        variants=len(experiment.variants),
    )
    return None, required


def _srm(experiment: Experiment, totals: list[VariantTotals]) -> SRMCheck:
    visitors = [t.n for t in totals]
    by_variant = dict(zip(experiment.variant_keys, visitors, strict=True))
    if sum(visitors) == 0:
        return SRMCheck(
            visitors=by_variant,
            pvalue=None,
            mismatch=False,
            expected=None,
            reason="no visitors yet",
        )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        result = stats.srm_test(visitors=visitors, weights=[v.weight for v in experiment.variants])
    return SRMCheck(
        visitors=by_variant,
        pvalue=_num(result.pvalue),
        mismatch=bool(result.mismatch),
        expected=tuple(_num(e) for e in result.expected),
        reason=result.reason,
    )


def _breakdown(experiment: Experiment, dimension: str, slices: Sequence[SliceTotals]) -> Breakdown:
    """Every slice compared on its own, Holm-adjusted across the slices of each metric."""
    srms = [_srm(experiment, s.totals) for s in slices]
    drafts = [
        [_draft(experiment, m, s.totals, [], [], None) for m in experiment.metrics] for s in slices
    ]
    per_metric: list[list[list[float | None]]] = [[] for _ in slices]
    sizes = []
    for m in range(len(experiment.metrics)):
        pvalues = [c.pvalue for d in drafts for c in d[m].comparisons]
        adjusted = iter(_holm(pvalues))
        sizes.append(len(pvalues))
        for i, d in enumerate(drafts):
            per_metric[i].append([next(adjusted) for _ in d[m].comparisons])
    position = next(i for i, d in enumerate(experiment.dimensions) if d.name == dimension)
    return Breakdown(
        dimension=dimension,
        max_values=experiment.dimensions[position].max_values,
        correction="holm",
        caveat=BREAKDOWN_CAVEAT,
        slices=tuple(
            SliceResults(
                value=s.value,
                other=s.other,
                visitors=sum(t.n for t in s.totals),
                srm=srm,
                metrics=tuple(
                    _metric(experiment, s.totals, draft, srm, adjusted, size)
                    for draft, adjusted, size in zip(d, per_metric[i], sizes, strict=True)
                ),
            )
            for i, (s, srm, d) in enumerate(zip(slices, srms, drafts, strict=True))
        ),
    )


def build_results(
    experiment: Experiment,
    totals: list[VariantTotals],
    daily: Sequence[tuple[str, list[VariantTotals]]],
    now: float,
    *,
    breakdown: tuple[str, Sequence[SliceTotals]] | None = None,
) -> ExperimentResults:
    """The read-out of ``experiment`` from its totals and daily increments, at time ``now``.

    ``breakdown`` is a dimension's name and the store's totals per value of it
    (:meth:`Store.dimension_totals`), for the per-slice comparison.
    """
    srm = _srm(experiment, totals)
    dates = [datetime.strptime(d, "%Y%m%d").replace(tzinfo=UTC).date() for d, _ in daily]
    cumulative = _cumulative(daily)
    plan = _plan(experiment, totals)
    drafts = [_draft(experiment, m, totals, cumulative, dates, plan[1]) for m in experiment.metrics]
    adjusted, sizes = _adjusted(drafts)
    metrics = tuple(
        _metric(experiment, totals, draft, srm, adjusted[i], sizes[i])
        for i, draft in enumerate(drafts)
    )
    primary = next((m for m in metrics if m.primary), None)
    stopped = experiment.stopped_at
    return ExperimentResults(
        experiment=experiment.key,
        name=experiment.name,
        status=experiment.status.value,
        winner=experiment.winner,
        stopped_at=None if stopped is None else datetime.fromtimestamp(stopped, UTC),
        confidence_level=experiment.confidence_level,
        generated_at=datetime.fromtimestamp(now, UTC),
        srm=srm,
        progress=_progress(experiment, plan, totals, now),
        metrics=metrics,
        verdict=experiment_verdict(srm, primary),
        guardrail_alerts=_guardrail_alerts(experiment, metrics, srm),
        breakdown=None if breakdown is None else _breakdown(experiment, *breakdown),
    )
