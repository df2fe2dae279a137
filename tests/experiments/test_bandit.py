"""The pure rules of bandit periods, and the definition fields of a bandit."""

from __future__ import annotations

from typing import Any

import pytest
from pydantic import ValidationError

from experiments.assignment import decide
from experiments.bandit import close_period, is_due, opening_history, with_weights
from experiments.definitions import Experiment, Status, transition
from experiments.errors import ConflictError, InvalidDefinitionError

DEFINITION: dict[str, Any] = {
    "key": "bandit",
    "variants": [
        {"key": "a", "weight": 0.5},
        {"key": "b", "weight": 0.3},
        {"key": "c", "weight": 0.2},
    ],
    "metrics": [{"name": "conversion", "kind": "conversion", "event": "buy", "primary": True}],
    "allocation": "bandit",
    "bandit_period_seconds": 600,
}


def _running() -> Experiment:
    return transition(Experiment.model_validate(DEFINITION), Status.RUNNING, now=1000.0)


def test_periods_open_close_and_record_what_they_added() -> None:
    experiment = _running()
    history = opening_history(experiment)
    assert history.current.weights == (0.5, 0.3, 0.2) and history.current.started_at == 1000.0
    assert not is_due(experiment, history, 1599.0) and is_due(experiment, history, 1600.0)
    updated, history = close_period(
        experiment,
        history,
        visitors=[50, 30, 20],
        conversions=[5, 6, 1],
        weights=[0.1, 0.8, 0.1],
        now=1600.0,
    )
    assert [v.weight for v in updated.variants] == [0.1, 0.8, 0.1]
    assert updated.variant_keys == experiment.variant_keys
    updated, history = close_period(
        updated,
        history,
        visitors=[60, 110, 30],
        conversions=[6, 20, 1],
        weights=[0.2, 0.6, 0.2],
        now=2300.0,
    )
    first, second, third = history.periods
    assert first.visitors == (50, 30, 20) and first.conversions == (5.0, 6.0, 1.0)
    assert second.visitors == (10, 80, 10) and second.conversions == (1.0, 14.0, 0.0)
    assert (second.started_at, second.ended_at) == (1600.0, 2300.0)
    assert third.visitors is None and third.visitors_at_start == (60, 110, 30)
    assert third.weights == (0.2, 0.6, 0.2) and third.index == 2


def test_new_weights_move_the_bucket_ranges() -> None:
    experiment = _running()
    moved = with_weights(experiment, [0.0, 1.0, 0.0])
    assert {decide(moved, f"v{i}").variant_index for i in range(200)} == {1}
    # the original's cached ranges are untouched
    assert len({decide(experiment, f"v{i}").variant_index for i in range(200)}) == 3


def test_refusals() -> None:
    experiment = _running()
    with pytest.raises(InvalidDefinitionError, match="one entry per variant"):
        with_weights(experiment, [0.5, 0.5])
    with pytest.raises(InvalidDefinitionError, match="sum to 1"):
        with_weights(experiment, [0.5, 0.5, 0.5])
    history = opening_history(experiment)

    def close(definition: Experiment, now: float) -> None:
        zeros = [0] * 3
        close_period(
            definition, history, visitors=zeros, conversions=zeros, weights=[0.4, 0.3, 0.3], now=now
        )

    with pytest.raises(InvalidDefinitionError, match="before the current period's start"):
        close(experiment, 10.0)
    with pytest.raises(ConflictError, match="re-weights only while running"):
        close(transition(experiment, Status.PAUSED, now=1100.0), 1200.0)
    fixed = Experiment.model_validate({**DEFINITION, "allocation": "fixed"})
    with pytest.raises(ConflictError, match="allocation 'fixed'"):
        opening_history(fixed)


def test_definition_rules() -> None:
    assert Experiment.model_validate({**DEFINITION, "allocation": "fixed"}).bandit_floor == 0.01
    mean = [{"name": "revenue", "kind": "mean", "event": "buy", "primary": True}]
    with pytest.raises(ValidationError, match="got 'revenue' \\(mean\\)"):
        Experiment.model_validate({**DEFINITION, "metrics": mean})
    with pytest.raises(ValidationError, match="got none"):
        Experiment.model_validate({**DEFINITION, "metrics": []})
    with pytest.raises(ValidationError, match="bandit_floor must be at most 1/3"):
        Experiment.model_validate({**DEFINITION, "bandit_floor": 0.4})
    with pytest.raises(ValidationError, match="bandit_period_seconds"):
        Experiment.model_validate({**DEFINITION, "bandit_period_seconds": 10})
    with pytest.raises(ValidationError, match="allocation"):
        Experiment.model_validate({**DEFINITION, "allocation": "greedy"})
