"""Targeting, namespaces, holdouts and QA forcing in decide(), and the checks before a start."""

from __future__ import annotations

from typing import Any

import pytest

from experiments.assignment import Reason, decide
from experiments.bucketing import in_namespace
from experiments.definitions import Experiment, ExperimentPatch, Status, apply_patch
from experiments.errors import ConflictError, InvalidDefinitionError
from experiments.exclusion import check_holdout, check_start

VISITORS = [f"visitor-{i}" for i in range(100_000)]


def _experiment(key: str, **fields: Any) -> Experiment:
    data: dict[str, Any] = {
        "key": key,
        "variants": [{"key": "control", "weight": 0.5}, {"key": "treatment", "weight": 0.5}],
        "status": "running",
        **fields,
    }
    return Experiment.model_validate(data)


def _holdout(share: float = 0.1, **fields: Any) -> Experiment:
    return _experiment(
        "holdout-2026",
        kind="holdout",
        seed="holdout-2026-seed",
        variants=[{"key": "holdout", "weight": share}, {"key": "general", "weight": 1 - share}],
        **fields,
    )


def test_condition_reads_attributes_and_the_visitor_id() -> None:
    uk = _experiment("uk", condition={"country": "UK", "app.version": {"$vgte": "2.1.0"}})
    assert decide(uk, "a", {"country": "UK", "app": {"version": "2.10.1"}}).variant is not None
    for attributes in ({"country": "FR", "app": {"version": "3.0.0"}}, {"country": "UK"}, None):
        decision = decide(uk, "a", attributes)
        assert (decision.variant, decision.reason) == (None, Reason.NOT_TARGETED)
        assert decision.records  # looked up: a visitor enrolled before the condition keeps it
    by_id = _experiment("even", condition={"id": {"$regex": "[02468]$"}})
    assert decide(by_id, "visitor-2").reason is Reason.ENROLLED
    assert decide(by_id, "visitor-3").reason is Reason.NOT_TARGETED
    # the visitor id wins over an attribute called id
    assert decide(by_id, "visitor-3", {"id": "visitor-2"}).reason is Reason.NOT_TARGETED


def test_no_condition_and_an_empty_one_let_everyone_in() -> None:
    for experiment in (_experiment("a"), _experiment("b", condition={})):
        assert all(decide(experiment, v).reason is Reason.ENROLLED for v in VISITORS[:500])


def test_hash_attribute_buckets_by_that_attribute() -> None:
    by_company = _experiment("b2b", hash_attribute="company")
    same = {decide(by_company, f"v{i}", {"company": "acme"}).variant for i in range(50)}
    assert len(same) == 1 and None not in same
    assert (
        decide(by_company, "v1", {"company": 42}).variant
        == decide(by_company, "other", {"company": "42"}).variant
    )
    missing = decide(by_company, "v1", {})
    assert (missing.variant, missing.reason, missing.records) == (
        None,
        Reason.NO_HASH_ATTRIBUTE,
        False,
    )


def test_two_experiments_of_one_namespace_share_no_visitor_among_100k() -> None:
    first = _experiment("hero", namespace={"id": "homepage", "start": 0.0, "end": 0.4})
    second = _experiment("banner", namespace={"id": "homepage", "start": 0.4, "end": 1.0})
    both = in_first = in_second = 0
    for visitor in VISITORS:
        a = decide(first, visitor).variant is not None
        b = decide(second, visitor).variant is not None
        both += a and b
        in_first += a
        in_second += b
    assert both == 0
    assert in_first + in_second == len(VISITORS)  # the two ranges tile the namespace
    assert abs(in_first / len(VISITORS) - 0.4) < 0.01
    outside = decide(first, next(v for v in VISITORS if not in_namespace(v, ("homepage", 0, 0.4))))
    assert (outside.reason, outside.records) == (Reason.OUTSIDE_NAMESPACE, False)


def test_holdout_visitors_are_in_no_covered_experiment_among_100k() -> None:
    holdout = _holdout(0.1)
    covered = [_experiment(k, holdout=holdout.key) for k in ("pricing", "search", "nav")]
    held = 0
    for visitor in VISITORS:
        in_holdout = decide(holdout, visitor).variant == "holdout"
        held += in_holdout
        for experiment in covered:
            decision = decide(experiment, visitor, holdout=holdout)
            if in_holdout:
                assert (decision.variant, decision.reason) == (None, Reason.HELD_OUT)
            else:
                assert decision.reason is Reason.ENROLLED
    assert abs(held / len(VISITORS) - 0.1) < 0.005
    # a stopped holdout keeps nobody out
    stopped = holdout.model_copy(update={"status": Status.STOPPED})
    assert all(
        decide(covered[0], v, holdout=stopped).reason is Reason.ENROLLED for v in VISITORS[:1000]
    )


def test_forced_visitors_see_the_pinned_variant_and_are_not_recorded() -> None:
    experiment = _experiment("qa", forced={"qa-1": "treatment"}, condition={"country": "UK"})
    decision = decide(experiment, "qa-1")
    assert (decision.variant, decision.reason, decision.records) == (
        "treatment",
        Reason.FORCED,
        False,
    )
    with pytest.raises(ValueError, match="forced"):
        _experiment("qa", forced={"qa-1": "nope"})


def test_holdout_definitions_are_checked() -> None:
    with pytest.raises(ValueError, match="exactly two variants"):
        _experiment("h", kind="holdout", coverage=0.5)
    with pytest.raises(ValueError, match="no condition"):
        _holdout(condition={"a": 1})
    check_holdout(_experiment("x", holdout="holdout-2026"), {"holdout-2026": _holdout()})
    with pytest.raises(InvalidDefinitionError, match="kind 'holdout'"):
        check_holdout(_experiment("x", holdout="other"), {"other": _experiment("other")})
    with pytest.raises(InvalidDefinitionError, match="no experiment"):
        check_holdout(_experiment("x", holdout="gone"), {})


def test_overlapping_ranges_of_one_namespace_are_refused_at_start() -> None:
    live = _experiment("hero", namespace={"id": "homepage", "start": 0.0, "end": 0.5})
    others = {"hero": live}
    check_start(_experiment("b", namespace={"id": "homepage", "start": 0.5, "end": 1}), others)
    check_start(_experiment("c", namespace={"id": "checkout", "start": 0.2, "end": 0.6}), others)
    with pytest.raises(ConflictError, match=r"overlaps hero \[0.0, 0.5\)"):
        check_start(
            _experiment("d", namespace={"id": "homepage", "start": 0.4, "end": 0.6}), others
        )
    stopped = {"hero": live.model_copy(update={"status": Status.STOPPED})}
    check_start(_experiment("d", namespace={"id": "homepage", "start": 0.4, "end": 0.6}), stopped)
    with pytest.raises(ValueError, match="start must be below end"):
        _experiment("e", namespace={"id": "homepage", "start": 0.5, "end": 0.5})


def test_who_is_bucketed_where_is_frozen_after_draft_but_the_condition_is_not() -> None:
    running = _experiment("r", namespace={"id": "n", "start": 0, "end": 0.5})
    for patch in (
        {"namespace": {"id": "n", "start": 0, "end": 0.6}},
        {"hash_attribute": "company"},
        {"holdout": "holdout-2026"},
    ):
        with pytest.raises(ConflictError, match="only in draft"):
            apply_patch(running, ExperimentPatch.model_validate(patch))
    targeted = apply_patch(running, ExperimentPatch(condition={"country": "UK"}))
    assert targeted.condition == {"country": "UK"}
    assert apply_patch(targeted, ExperimentPatch(condition={})).condition == {}
