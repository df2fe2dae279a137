"""Direction, guardrails, units and lifecycle states in the read-out and the pages built from it.

The read-out is built from hand-made totals (no Redis needed: the store's part is checked in
test_metric_truth.py), then rendered to the report, the dashboard and the terminal.
"""

from __future__ import annotations

import html
import re
from typing import Any

import pytest
from rich.console import Console

from experiments.definitions import Experiment, Status, transition
from experiments.store import VariantTotals
from service.readout.build import build_results
from service.readout.model import ExperimentResults, VerdictKind
from service.report.html import dashboard_html, report_html
from service.report.terminal import results_renderables

NOW = 1_764_590_000.0
DEFINITION: dict[str, Any] = {
    "key": "refund-check",
    "name": "Easier returns",
    "variants": [
        {"key": "control", "weight": 0.5},
        {"key": "easy", "name": "Easy returns", "weight": 0.5},
    ],
    "metrics": [
        {"name": "conversion", "kind": "conversion", "event": "purchase", "primary": True},
        {"name": "revenue", "kind": "mean", "event": "purchase", "unit": "£", "cap": 500},
        {
            "name": "refund_rate",
            "kind": "count",
            "event": "refund",
            "direction": "lower",
            "guardrail": True,
        },
    ],
    "generation": 1,
}


def _experiment(**changes: Any) -> Experiment:
    draft = Experiment.model_validate({**DEFINITION, **changes})
    return transition(draft, Status.RUNNING, now=NOW - 14 * 86400)


def _totals(conversions: tuple[int, int], refunds: tuple[int, int]) -> list[VariantTotals]:
    out = []
    for c, r, revenue in zip(conversions, refunds, (4_000.0, 6_000.0), strict=True):
        out.append(
            VariantTotals(
                n=5000,
                sums={"conversion": c, "revenue": revenue, "refund_rate": r},
                sum_squares={"conversion": c, "revenue": revenue * 60, "refund_rate": r},
            )
        )
    return out


def _build(experiment: Experiment, totals: list[VariantTotals]) -> ExperimentResults:
    return build_results(experiment, totals, [], NOW)


def _text(page: str) -> str:
    page = re.sub(r"<(style|svg)\b.*?</\1>", " ", page, flags=re.S)
    return html.unescape(re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", page)))


def _metric(results: ExperimentResults, name: str) -> Any:
    return next(m for m in results.metrics if m.name == name)


def test_a_lower_is_better_metric_that_rises_significantly_is_losing() -> None:
    results = _build(_experiment(), _totals((150, 150), (100, 224)))
    refunds = _metric(results, "refund_rate")
    assert refunds.direction == "lower"
    row = refunds.treatments[0]
    assert row.relative_lift == pytest.approx(1.24) and row.significant
    assert row.verdict is not None and row.verdict.kind is VerdictKind.LOSING
    assert row.verdict.sentence.startswith("Easy returns raised refund rate per visitor by 124%")
    assert "Significant: worse" in row.verdict.sentence
    # "chance to beat control" follows the direction: beating it means fewer refunds
    assert row.chance_to_beat_control is not None and row.chance_to_beat_control < 0.001
    assert "under 0.1% chance to beat control" in row.verdict.sentence


def test_a_lower_is_better_metric_that_falls_significantly_is_winning() -> None:
    experiment = _experiment(
        metrics=[{**DEFINITION["metrics"][2], "guardrail": False, "primary": True}]
    )
    results = _build(experiment, _totals((150, 150), (224, 100)))
    assert results.verdict.kind is VerdictKind.WINNING
    assert "lowered refund rate per visitor by 55%" in results.verdict.sentence
    assert "Significant: better" in results.verdict.sentence


def test_a_harmed_guardrail_raises_its_banner_while_the_primary_wins() -> None:
    experiment = _experiment()
    results = _build(experiment, _totals((150, 230), (100, 224)))
    assert results.verdict.kind is VerdictKind.WINNING
    (alert,) = results.guardrail_alerts
    assert (alert.metric, alert.variant, alert.reason) == (
        "refund_rate",
        "easy",
        "significantly_worse",
    )
    page = report_html(experiment, results)
    text = _text(page)
    assert 'id="guardrail-banner"' in page and "A guardrail metric is harmed" in text
    assert text.index("Guardrails") > text.index("revenue per visitor")
    assert "Lower is better." in text
    board = _text(dashboard_html([(experiment, results)]))
    assert "Guardrail harmed" in board and "Winning" in board


def test_a_guardrail_holding_raises_nothing() -> None:
    experiment = _experiment()
    results = _build(experiment, _totals((150, 230), (100, 104)))
    assert results.guardrail_alerts == ()
    assert 'id="guardrail-banner"' not in report_html(experiment, results)
    assert "Guardrail harmed" not in dashboard_html([(experiment, results)])


def test_a_margin_flags_a_harm_the_interval_cannot_rule_out() -> None:
    metrics = [
        *DEFINITION["metrics"][:2],
        {**DEFINITION["metrics"][2], "non_inferiority_margin": 0.05},
    ]
    results = _build(_experiment(metrics=metrics), _totals((150, 230), (100, 112)))
    row = _metric(results, "refund_rate").treatments[0]
    assert not row.significant and row.relative_ci is not None and row.relative_ci[1] > 0.05
    (alert,) = results.guardrail_alerts
    assert alert.reason == "margin_not_ruled_out"
    assert "beyond its 5.0% margin" in alert.sentence


def test_units_caps_and_ratio_parts_are_shown() -> None:
    metrics = [
        *DEFINITION["metrics"],
        {"name": "orders", "kind": "count", "event": "purchase"},
        {"name": "aov", "kind": "ratio", "numerator": "revenue", "denominator": "orders"},
    ]
    experiment = _experiment(metrics=metrics)
    results = _build(experiment, _totals((150, 230), (100, 104)))
    revenue = _metric(results, "revenue").treatments[0]
    assert revenue.verdict is not None
    assert "from £0.800 to £1.20" in revenue.verdict.sentence
    text = _text(report_html(experiment, results))
    assert "£4,000.00" in text and "£0.800" in text
    assert "Capped: each visitor counts at most £500." in text
    assert "aov (revenue ÷ orders)" in text


def test_a_stopped_experiment_names_its_winner_and_date() -> None:
    experiment = transition(_experiment(), Status.STOPPED, now=NOW, winner="easy")
    results = _build(experiment, _totals((150, 230), (100, 104)))
    assert results.stopped_at is not None and results.winner == "easy"
    board = _text(dashboard_html([(experiment, results)]))
    assert "Shipped Easy returns" in board
    text = _text(report_html(experiment, results))
    assert "Stopped 01 Dec 2025: shipped Easy returns" in text
    none = transition(_experiment(), Status.STOPPED, now=NOW)
    assert "Stopped, none shipped" in _text(
        dashboard_html([(none, _build(none, _totals((150, 230), (100, 104))))])
    )


def test_progress_past_the_plan_never_reads_as_more_than_needed() -> None:
    experiment = _experiment(minimum_detectable_effect=0.5)
    results = _build(experiment, _totals((150, 230), (100, 104)))
    required = results.progress.required_per_variant
    assert required is not None and required < 5000
    text = _text(report_html(experiment, results))
    assert f"5,000 of {required:,}" not in text
    assert f"The planned sample size is reached: {required:,} visitors per variant" in text
    console = Console(width=200, record=True)
    console.print(results_renderables(experiment, results))
    assert "planned sample size is reached" in console.export_text()


def test_srm_advice_says_to_start_a_new_experiment() -> None:
    experiment = _experiment()
    totals = _totals((150, 230), (100, 104))
    totals[1].n = 4000
    results = _build(experiment, totals)
    assert results.srm.mismatch
    assert "start a new experiment" in results.verdict.sentence
    assert "new seed" not in _text(report_html(experiment, results))
