"""The verdict wording follows the numbers: typed read-out rows through the pure functions.

Rows are built as :class:`VariantResult` values, the type the read-out carries, so a field the
verdicts read cannot drift from what the build writes (``test_readout_model.py`` feeds a real
build through the same types).
"""

from __future__ import annotations

from dataclasses import dataclass

import pytest
from hypothesis import given
from hypothesis import strategies as st

from service.readout.model import (
    MetricKindName,
    MetricResults,
    SRMCheck,
    VariantResult,
    Verdict,
    VerdictKind,
)
from service.readout.verdicts import Context, comparison_verdict, experiment_verdict
from service.readout.wording import format_chance, format_lift, metric_phrase


def _variant(variant: str, visitors: int, total: float) -> VariantResult:
    value = total / visitors if visitors else None
    return VariantResult.uncompared(variant=variant, visitors=visitors, total=total, value=value)


def _row(
    variant: str,
    *,
    visitors: int = 10_000,
    total: float = 300.0,
    lift: float | None = 0.05,
    ci: tuple[float, float] | None = (-0.05, 0.15),
    pvalue: float | None = 0.3,
    adjusted: float | None = None,
    significant: bool = False,
    chance: float | None = 0.8,
    sequential: float | None = None,
) -> VariantResult:
    return _variant(variant, visitors, total).model_copy(
        update={
            "absolute_lift": None if lift is None else lift * 0.03,
            "absolute_ci": None if ci is None else (ci[0] * 0.03, ci[1] * 0.03),
            "relative_lift": lift,
            "relative_ci": ci,
            "pvalue": pvalue,
            "adjusted_pvalue": pvalue if adjusted is None else adjusted,
            "significant": significant,
            "chance_to_beat_control": chance,
            "sequential_pvalue": pvalue if sequential is None else sequential,
            "method": "test",
        }
    )


@dataclass(frozen=True)
class _Readout:
    srm: SRMCheck
    metric: MetricResults

    def overall(self) -> Verdict:
        return experiment_verdict(self.srm, self.metric)

    def first(self) -> Verdict:
        verdict = self.metric.treatments[0].verdict
        assert verdict is not None
        return verdict


def _results(
    *treatments: VariantResult,
    kind: MetricKindName = "conversion",
    name: str = "conversion",
    control_visitors: int = 10_000,
    control_total: float = 300.0,
    mismatch: bool = False,
    labels: dict[str, str] | None = None,
) -> _Readout:
    """The verdicts on ``treatments``, decided as the build decides them."""
    control = _variant("control", control_visitors, control_total)
    rows = [control, *treatments]
    srm = SRMCheck(
        visitors={r.variant: r.visitors for r in rows},
        pvalue=1e-6 if mismatch else 0.6,
        mismatch=mismatch,
        expected=None,
        reason=None,
    )
    context = Context(srm=srm, confidence_level=0.95, metric=name, kind=kind, control=control)
    names = labels or {}
    judged = []
    for row in treatments:
        verdict = comparison_verdict(context, row, names.get(row.variant, row.variant))
        judged.append(row.model_copy(update={"verdict": verdict}))
    metric = MetricResults(
        name=name,
        kind=kind,
        primary=True,
        direction="higher",
        guardrail=False,
        non_inferiority_margin=None,
        cap=None,
        unit=None,
        numerator=None,
        denominator=None,
        family_size=len(judged),
        variants=(control, *judged),
    )
    return _Readout(srm, metric)


def _verdict(results: _Readout, label: str | None = None) -> Verdict:
    if label is None:
        return results.first()
    row = results.metric.treatments[0]
    context = Context(
        srm=results.srm,
        confidence_level=0.95,
        metric=results.metric.name,
        kind=results.metric.kind,
        control=results.metric.control,
    )
    return comparison_verdict(context, row, label)


def test_a_significant_gain_reads_like_the_issue_example() -> None:
    results = _results(
        _row("filters", lift=0.761, ci=(0.47, 1.06), pvalue=1e-5, significant=True, chance=0.999),
        kind="mean",
        name="revenue",
        control_total=54_000.0,
    )
    verdict = _verdict(results, "Filters")
    assert verdict.kind is VerdictKind.WINNING
    assert verdict.badge == "Winning"
    assert verdict.sentence.startswith(
        "Filters raised revenue per visitor by 76% (95% interval +47% to +106%); "
        "99.9% chance to beat control. Significant"
    )


def test_an_inconclusive_result_is_never_called_a_win() -> None:
    results = _results(_row("b", lift=0.40, ci=(-0.02, 0.82), pvalue=0.06, chance=0.97))
    verdict = _verdict(results)
    assert verdict.kind is VerdictKind.INCONCLUSIVE
    assert verdict.badge == "Inconclusive"
    assert "raised" not in verdict.sentence
    assert "Not significant" in verdict.sentence
    assert verdict.sentence.startswith("No clear difference yet")


def test_a_raw_p_below_alpha_that_fails_the_adjustment_is_inconclusive() -> None:
    row = _row("b", lift=0.2, ci=(0.01, 0.39), pvalue=0.03, adjusted=0.09, significant=False)
    verdict = _verdict(_results(row))
    assert verdict.kind is VerdictKind.INCONCLUSIVE
    assert "0.090 after adjusting for several comparisons" in verdict.sentence


def test_a_significant_loss_is_called_a_loss() -> None:
    row = _row("b", lift=-0.12, ci=(-0.2, -0.04), pvalue=0.004, significant=True, chance=0.002)
    verdict = _verdict(_results(row), "Red button")
    assert verdict.kind is VerdictKind.LOSING
    assert verdict.badge == "Losing"
    assert verdict.sentence.startswith("Red button lowered conversion rate by 12%")
    assert "Significant: worse" in verdict.sentence
    assert "raised" not in verdict.sentence


@pytest.mark.parametrize(
    "row",
    [
        _row("b", lift=0.3, ci=(0.1, 0.5), pvalue=0.001, significant=True),
        _row("b", lift=-0.3, ci=(-0.5, -0.1), pvalue=0.001, significant=True),
        _row("b"),
        _row("b", visitors=0, total=0.0, lift=None, ci=None, pvalue=None),
    ],
    ids=["win", "loss", "inconclusive", "empty"],
)
def test_a_sample_ratio_mismatch_overrides_every_verdict(row: VariantResult) -> None:
    results = _results(row, mismatch=True)
    assert _verdict(results).kind is VerdictKind.SRM
    overall = results.overall()
    assert overall.kind is VerdictKind.SRM
    assert overall.badge == "SRM problem"
    assert "Sample ratio mismatch" in overall.sentence


@pytest.mark.parametrize(
    ("results", "reason"),
    [
        (
            _results(
                _row("b", visitors=0, total=0, lift=None, ci=None, pvalue=None, chance=None),
                control_visitors=0,
                control_total=0.0,
            ),
            "no visitors",
        ),
        (
            _results(_row("b", visitors=0, total=0, lift=None, ci=None, pvalue=None)),
            "no visitors in b yet",
        ),
        (
            _results(
                _row("b", total=0.0, lift=None, ci=None, pvalue=None, chance=0.5),
                control_total=0.0,
            ),
            "no conversions yet in either variant",
        ),
        (
            _results(_row("b", total=5.0, lift=None, ci=None, pvalue=0.02), control_total=0.0),
            "control has no conversion rate yet",
        ),
    ],
    ids=["no-traffic", "one-variant-empty", "zero-conversions", "zero-baseline"],
)
def test_missing_data_is_not_enough_data_without_numbers(results: _Readout, reason: str) -> None:
    verdict = _verdict(results)
    assert verdict.kind is VerdictKind.NOT_ENOUGH_DATA
    assert reason in verdict.sentence
    assert "%" not in verdict.sentence
    assert results.overall().kind is VerdictKind.NOT_ENOUGH_DATA


def test_significant_but_not_yet_safe_to_peek_carries_a_caveat() -> None:
    row = _row("b", lift=0.2, ci=(0.05, 0.35), pvalue=0.01, significant=True, sequential=0.2)
    verdict = _verdict(_results(row))
    assert verdict.kind is VerdictKind.WINNING
    assert "always-valid p-value (0.200) is not yet below 0.05" in verdict.sentence


def test_experiment_verdict_names_the_best_winner_then_a_loser() -> None:
    win = _row("b", lift=0.3, ci=(0.1, 0.5), pvalue=0.001, significant=True)
    better = _row("c", lift=0.5, ci=(0.3, 0.7), pvalue=0.0001, significant=True)
    loss = _row("d", lift=-0.3, ci=(-0.5, -0.1), pvalue=0.001, significant=True)
    flat = _row("e")
    labels = {"b": "B", "c": "C", "d": "D", "e": "E"}
    overall = _results(loss, win, better, flat, labels=labels).overall()
    assert (overall.kind, overall.variant) == (VerdictKind.WINNING, "c")
    assert overall.sentence.startswith("C raised")
    overall = _results(flat, loss, labels=labels).overall()
    assert (overall.kind, overall.variant) == (VerdictKind.LOSING, "d")
    overall = _results(flat, labels=labels).overall()
    assert overall.kind is VerdictKind.INCONCLUSIVE


@given(
    lift=st.floats(-0.9, 3.0, allow_nan=False),
    width=st.floats(0.001, 2.0, allow_nan=False),
    pvalue=st.floats(0.0, 1.0, allow_nan=False),
    significant=st.booleans(),
    mismatch=st.booleans(),
)
def test_the_kind_follows_significance_sign_and_srm(
    lift: float, width: float, pvalue: float, significant: bool, mismatch: bool
) -> None:
    row = _row(
        "b",
        lift=lift,
        ci=(lift - width, lift + width),
        pvalue=pvalue,
        significant=significant,
    )
    verdict = _verdict(_results(row, mismatch=mismatch))
    if mismatch:
        expected = VerdictKind.SRM
    elif significant and lift > 0:
        expected = VerdictKind.WINNING
    elif significant and lift < 0:
        expected = VerdictKind.LOSING
    else:
        expected = VerdictKind.INCONCLUSIVE
    assert verdict.kind is expected
    assert ("raised" in verdict.sentence) == (expected is VerdictKind.WINNING)
    assert ("lowered" in verdict.sentence) == (expected is VerdictKind.LOSING)


def test_formatting_never_rounds_to_certainty() -> None:
    assert format_chance(0.99996) == "over 99.9%"
    assert format_chance(0.00001) == "under 0.1%"
    assert format_chance(0.975) == "97.5%"
    assert format_chance(None) == "—"
    assert format_lift(0.761) == "+76%"
    assert format_lift(-0.042) == "-4.2%"
    assert format_lift(1.0168) == "+102%"
    assert format_lift(None) == "—"


def test_metric_phrases() -> None:
    assert metric_phrase("conversion", "conversion") == "conversion rate"
    assert metric_phrase("email_field_clicks", "conversion") == "email field clicks"
    assert metric_phrase("revenue", "mean") == "revenue per visitor"
    assert metric_phrase("cart_visits", "count") == "cart visits per visitor"
    assert metric_phrase("aov", "ratio") == "aov"
