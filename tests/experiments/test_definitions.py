"""Experiment definitions refuse what is invalid with a message naming field and value."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from experiments.definitions import (
    Experiment,
    ExperimentPatch,
    Status,
    Variant,
    apply_patch,
    transition,
)
from experiments.errors import ConflictError, InvalidDefinitionError

BASE: dict[str, Any] = {
    "key": "uk-tool-centre",
    "variants": [{"key": "control", "weight": 0.5}, {"key": "no-filter-menu", "weight": 0.5}],
    "metrics": [
        {"name": "engagement", "kind": "conversion", "event": "product_click", "primary": True}
    ],
}


def _error(**changes: Any) -> str:
    with pytest.raises(ValidationError) as info:
        Experiment.model_validate({**BASE, **changes})
    return str(info.value)


def test_seed_defaults_to_key() -> None:
    assert Experiment.model_validate(BASE).seed == "uk-tool-centre"
    assert Experiment.model_validate({**BASE, "seed": "s2"}).seed == "s2"


def test_weights_must_sum_to_one() -> None:
    message = _error(variants=[{"key": "a", "weight": 0.5}, {"key": "b", "weight": 0.6}])
    assert "weights must sum to 1, got 1.1" in message


def test_duplicate_variant_keys() -> None:
    assert "duplicates ['a']" in _error(
        variants=[{"key": "a", "weight": 0.5}, {"key": "a", "weight": 0.5}]
    )


@pytest.mark.parametrize(
    ("changes", "needle"),
    [
        ({"coverage": 1.2}, "coverage"),
        ({"key": "Bad Key"}, "key"),
        ({"variants": [{"key": "only", "weight": 1.0}]}, "at least 2"),
        ({"hash_version": 3}, "hash_version"),
        (
            {"metrics": [{"name": "m", "kind": "conversion", "event": "e"}]},
            "exactly one must be primary",
        ),
        ({"metrics": [{"name": "m", "kind": "mean", "primary": True}]}, "needs an 'event'"),
        (
            {
                "metrics": [
                    {"name": "m", "kind": "conversion", "event": "e", "primary": True},
                    {"name": "r", "kind": "ratio", "numerator": "m", "denominator": "zz"},
                ]
            },
            "unknown metric 'zz'",
        ),
        ({"metrics": [{"name": "m", "kind": "histogram", "event": "e", "primary": True}]}, "kind"),
    ],
)
def test_invalid_definitions_name_the_problem(changes: dict[str, Any], needle: str) -> None:
    assert needle in _error(**changes)


def test_lifecycle_transitions() -> None:
    e = Experiment.model_validate(BASE)
    with pytest.raises(ConflictError, match="'draft' to 'stopped'"):
        transition(e, Status.STOPPED, now=1.0)
    running = transition(e, Status.RUNNING, now=10.0)
    assert running.started_at == 10.0
    paused = transition(running, Status.PAUSED, now=20.0)
    resumed = transition(paused, Status.RUNNING, now=30.0)
    assert resumed.started_at == 10.0
    stopped = transition(resumed, Status.STOPPED, now=40.0, winner="no-filter-menu")
    assert (stopped.status, stopped.winner, stopped.stopped_at) == (
        Status.STOPPED,
        "no-filter-menu",
        40.0,
    )
    with pytest.raises(ConflictError, match="allowed: \\['none'\\]"):
        transition(stopped, Status.RUNNING, now=50.0)
    with pytest.raises(InvalidDefinitionError, match="winner must be one of"):
        transition(resumed, Status.STOPPED, now=40.0, winner="nope")


def test_running_experiment_variants_are_frozen_but_coverage_ramps() -> None:
    running = transition(Experiment.model_validate(BASE), Status.RUNNING, now=1.0)
    new_variants = [Variant(key="control", weight=0.3), Variant(key="no-filter-menu", weight=0.7)]
    with pytest.raises(ConflictError, match="cannot change while it is running"):
        apply_patch(running, ExperimentPatch(variants=new_variants))
    assert apply_patch(running, ExperimentPatch(coverage=0.3)).coverage == 0.3
    # in draft, variants may change freely
    draft = Experiment.model_validate(BASE)
    assert apply_patch(draft, ExperimentPatch(variants=new_variants)).variants == new_variants


def test_running_metrics_can_be_added_not_redefined() -> None:
    running = transition(Experiment.model_validate(BASE), Status.RUNNING, now=1.0)
    added = [*running.metrics, {"name": "clicks", "kind": "count", "event": "product_click"}]
    assert (
        len(apply_patch(running, ExperimentPatch.model_validate({"metrics": added})).metrics) == 2
    )
    with pytest.raises(ConflictError, match="engagement"):
        apply_patch(
            running,
            ExperimentPatch.model_validate(
                {
                    "metrics": [
                        {
                            "name": "engagement",
                            "kind": "count",
                            "event": "product_click",
                            "primary": True,
                        }
                    ]
                }
            ),
        )
