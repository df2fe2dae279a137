"""The plain-language verdict on each comparison and on the experiment, decided once per build.

:func:`comparison_verdict` is a pure function of one row of the read-out and its context; the
build (:mod:`service.readout.build`) calls it once per non-control row and carries the result on
the row, and :func:`experiment_verdict` picks among those carried verdicts. The rules, in order:

1. a failed sample-ratio check overrides everything: no comparison is trusted;
2. no visitors in a variant, no conversions, or an undefined lift or interval is "not enough
   data", with the reason, never a number that looks like an answer;
3. a significant comparison (``significant`` is decided on the multiplicity-adjusted p-value)
   that moved the metric the better way is winning, the worse way losing: a metric declares
   which way is better (``direction``: higher by default, lower for refunds or load times);
4. everything else is inconclusive, whatever the point estimate says.

A guardrail is harmed (:func:`guardrail_alert`) when its comparison is losing, or, when it
declares a non-inferiority margin, when its interval reaches past the margin the worse way.
"""

from __future__ import annotations

from dataclasses import dataclass

from service.readout.model import (
    DirectionName,
    GuardrailAlert,
    MetricKindName,
    MetricResults,
    SRMCheck,
    VariantResult,
    Verdict,
)
from service.readout.model import VerdictKind as Kind
from service.readout.wording import (
    describe_pvalue,
    format_chance,
    format_interval,
    format_level,
    format_lift,
    format_number,
    format_pvalue,
    metric_phrase,
    with_unit,
)

__all__ = [
    "Context",
    "comparison_verdict",
    "experiment_verdict",
    "guardrail_alert",
    "not_enough_data_reason",
]


@dataclass(frozen=True, slots=True)
class Context:
    """What a comparison's verdict depends on besides its own row."""

    srm: SRMCheck
    confidence_level: float
    metric: str
    kind: MetricKindName
    control: VariantResult
    direction: DirectionName = "higher"
    unit: str | None = None

    @property
    def alpha(self) -> float:
        return 1 - self.confidence_level

    def better(self, lift: float) -> bool:
        """Whether a change of sign ``lift`` is an improvement for this metric."""
        return lift < 0 if self.direction == "lower" else lift > 0


def not_enough_data_reason(context: Context, row: VariantResult) -> str | None:
    """Why ``row`` cannot be compared with the control yet, or ``None`` when it can."""
    control = context.control
    empty = [v.variant for v in (control, row) if v.visitors == 0]
    if empty:
        return f"no visitors in {' and '.join(empty)} yet"
    if context.kind == "conversion" and control.total == 0 and row.total == 0:
        return "no conversions yet in either variant"
    if control.value is None or control.value == 0:
        return f"{control.variant} has no {metric_phrase(context.metric, context.kind)} yet"
    if row.relative_lift is None or row.relative_ci is None or row.pvalue is None:
        return row.reasons[0] if row.reasons else "the comparison is undefined"
    return None


def _srm_sentence(srm: SRMCheck) -> str:
    return (
        f"Sample ratio mismatch ({describe_pvalue(srm.pvalue)}): visitors are not split "
        "the way the experiment is configured, so something is losing or misrouting visitors "
        "and no lift here can be trusted. Find the cause, then start a new experiment "
        "(the seed of this one is fixed, so it cannot be re-randomised)."
    )


def _evidence(context: Context, row: VariantResult) -> str:
    interval = f"{format_level(context.confidence_level)} interval"
    if context.unit is not None and context.kind != "conversion":
        before, after = (
            with_unit(format_number(v), context.unit) for v in (context.control.value, row.value)
        )
        interval = f"from {before} to {after}; {interval}"
    interval += f" {format_interval(row.relative_ci)}"
    chance = row.chance_to_beat_control
    tail = f"; {format_chance(chance)} chance to beat control" if chance is not None else ""
    return f"({interval}){tail}"


def _pvalues(row: VariantResult) -> str:
    text = describe_pvalue(row.pvalue)
    adjusted = format_pvalue(row.adjusted_pvalue)
    if row.adjusted_pvalue is not None and adjusted != format_pvalue(row.pvalue):
        text += f", {adjusted} after adjusting for several comparisons"
    return text


def _peeking_caveat(context: Context, row: VariantResult) -> str:
    seq = row.sequential_pvalue
    if seq is None or seq < context.alpha:
        return ""
    return (
        f" The always-valid p-value ({format_pvalue(seq)}) is not yet below "
        f"{context.alpha:g}: if you have been checking often, wait for the planned sample size."
    )


def comparison_verdict(context: Context, row: VariantResult, label: str) -> Verdict:
    """The verdict on one non-control variant (``label`` names it in the sentence)."""
    if context.srm.mismatch:
        return Verdict(kind=Kind.SRM, sentence=_srm_sentence(context.srm), variant=row.variant)
    reason = not_enough_data_reason(context, row)
    lift = row.relative_lift
    if reason is not None or lift is None:
        sentence = f"Not enough data yet for {label}: {reason}."
        return Verdict(kind=Kind.NOT_ENOUGH_DATA, sentence=sentence, variant=row.variant)
    what = metric_phrase(context.metric, context.kind)
    size = format_lift(lift, signed=False)
    evidence = _evidence(context, row)
    if row.significant and lift != 0:
        better = context.better(lift)
        judged = "" if context.direction == "higher" and better else ": better"
        if not better:
            judged = ": worse"
        sentence = (
            f"{label} {'raised' if lift > 0 else 'lowered'} {what} by {size} {evidence}. "
            f"Significant{judged} ({_pvalues(row)})."
        )
        kind = Kind.WINNING if better else Kind.LOSING
        sentence += _peeking_caveat(context, row)
        return Verdict(kind=kind, sentence=sentence, variant=row.variant)
    sentence = (
        f"No clear difference yet: {label} changed {what} by {format_lift(lift)} {evidence}. "
        f"Not significant ({_pvalues(row)})."
    )
    return Verdict(kind=Kind.INCONCLUSIVE, sentence=sentence, variant=row.variant)


def guardrail_alert(
    context: Context, row: VariantResult, label: str, margin: float | None
) -> GuardrailAlert | None:
    """The alert a guardrail raises for ``row``, or ``None`` when it is not harmed.

    Harmed: the comparison is losing (significantly worse), or, with a non-inferiority
    ``margin`` (relative), the interval's worse end lies beyond it: a harm larger than the
    margin cannot be ruled out.
    """
    verdict = row.verdict
    what = metric_phrase(context.metric, context.kind)
    if verdict is not None and verdict.kind is Kind.LOSING:
        return GuardrailAlert(
            metric=context.metric,
            variant=row.variant,
            reason="significantly_worse",
            sentence=f"Guardrail {what} is significantly worse with {label}: {verdict.sentence}",
        )
    ci = row.relative_ci
    if margin is None or ci is None or context.srm.mismatch:
        return None
    worst = ci[0] if context.direction == "higher" else ci[1]
    beyond = worst < -margin if context.direction == "higher" else worst > margin
    if not beyond:
        return None
    return GuardrailAlert(
        metric=context.metric,
        variant=row.variant,
        reason="margin_not_ruled_out",
        sentence=(
            f"Guardrail {what} may be harmed by {label} beyond its "
            f"{format_lift(margin, signed=False)} margin: its "
            f"{format_level(context.confidence_level)} interval "
            f"({format_interval(ci)}) reaches {format_lift(worst)}, so a harm that large "
            "cannot be ruled out yet."
        ),
    )


def experiment_verdict(srm: SRMCheck, primary: MetricResults | None) -> Verdict:
    """The experiment's badge, from the verdicts already carried by the primary metric's rows.

    Winning if any variant significantly beats the control (the largest lift is named); losing
    if some variant is significantly worse and none better; inconclusive if a comparison exists
    but is not significant; otherwise not enough data.
    """
    if srm.mismatch:
        return Verdict(kind=Kind.SRM, sentence=_srm_sentence(srm), variant=None)
    if primary is None:
        sentence = "The experiment has no primary metric."
        return Verdict(kind=Kind.NOT_ENOUGH_DATA, sentence=sentence, variant=None)
    if sum(srm.visitors.values()) == 0:
        sentence = "Not enough data yet: no visitors so far."
        return Verdict(kind=Kind.NOT_ENOUGH_DATA, sentence=sentence, variant=None)
    rows = [(row.verdict, row.relative_lift or 0.0) for row in primary.treatments if row.verdict]
    for kind, sign in ((Kind.WINNING, 1), (Kind.LOSING, -1), (Kind.INCONCLUSIVE, 1)):
        found = [(verdict, lift) for verdict, lift in rows if verdict.kind is kind]
        if found:
            return max(found, key=lambda pair: sign * pair[1])[0]
    if rows:
        return rows[0][0]
    return Verdict(kind=Kind.NOT_ENOUGH_DATA, sentence="No variants.", variant=None)
