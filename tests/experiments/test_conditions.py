"""Targeting conditions: GrowthBook's evalCondition conformance rows, and refusal at definition."""

from __future__ import annotations

from typing import Any

import pytest

from experiments.conditions import OPERATORS, check_condition, evaluate, padded_version
from experiments.definitions import ExperimentPatch, ExperimentSpec
from tests.experiments.test_bucketing_conformance import CASES

ROWS: list[list[Any]] = CASES["evalCondition"]


def test_every_eval_condition_row_is_here() -> None:
    assert len(ROWS) == 248


@pytest.mark.parametrize("row", ROWS, ids=[r[0] for r in ROWS])
def test_eval_condition(row: list[Any]) -> None:
    name, condition, attributes, expected = row[:4]
    saved_groups = row[4] if len(row) > 4 else None
    assert evaluate(condition, attributes, saved_groups) is expected, name


def test_rows_cover_every_operator_abacus_accepts() -> None:
    used: set[str] = set()

    def walk(value: object) -> None:
        if isinstance(value, dict):
            used.update(k for k in value if k in OPERATORS)
            for v in value.values():
                walk(v)
        elif isinstance(value, list):
            for v in value:
                walk(v)

    for row in ROWS:
        walk(row[1])
    # the two regex negations are GrowthBook operators the shared rows do not exercise
    assert OPERATORS - used == {"$notRegex", "$notRegexi"}
    assert evaluate({"a": {"$notRegex": "^x"}}, {"a": "yes"})
    assert not evaluate({"a": {"$notRegexi": "^Y"}}, {"a": "yes"})


def test_every_row_condition_abacus_can_evaluate_passes_the_check() -> None:
    refused = []
    for name, condition, *_ in ROWS:
        try:
            check_condition(condition)
        except ValueError as exc:
            refused.append((name, str(exc)))
    # refused: rows whose condition is broken on purpose (unknown operator, invalid regex, a
    # list operator given a scalar; the SDKs then evaluate to false) and saved groups, which
    # Abacus definitions do not carry; every other row's condition is accepted
    reasons = ("unknown operator", "invalid regular expression", "takes a list", "saved groups")
    assert len(refused) == 15, refused
    assert all(any(r in message for r in reasons) for _, message in refused), refused
    for name, condition, attributes, expected, *_ in ROWS:
        if name in {n for n, _ in refused} and "Group" not in name:
            assert expected is False and evaluate(condition, attributes) is False, name


@pytest.mark.parametrize(
    ("condition", "words"),
    [
        ({"name": {"$regx": "hello"}}, ["condition.name", "'$regx'"]),
        ({"a": {"b": 1}, "x.y": {"$regex": "("}}, ["condition.x.y", "'$regex'", "regular"]),
        ({"$or": [{"a": 1}, {"tags": {"$elemMatch": {"$bogus": 1}}}]}, ["condition.$or.1.tags"]),
        ({"$and": {"a": 1}}, ["condition.$and", "list of conditions"]),
        ({"$not": [1]}, ["condition.$not"]),
        ({"a": {"$in": "uk"}}, ["condition.a", "'$in'", "list"]),
        ({"a": {"$type": "int"}}, ["condition.a", "'$type'"]),
        ({"a": {"$inGroup": "beta"}}, ["condition.a", "'$inGroup'", "saved groups"]),
        ({"a": {"$not": {"$lt": 1, "$nope": 2}}}, ["condition.a.$not", "'$nope'"]),
    ],
)
def test_unevaluable_conditions_are_refused_naming_operator_and_path(
    condition: dict[str, Any], words: list[str]
) -> None:
    with pytest.raises(ValueError) as raised:
        check_condition(condition)
    assert all(w in str(raised.value) for w in words), str(raised.value)
    spec = {
        "key": "t",
        "variants": [{"key": "a", "weight": 0.5}, {"key": "b", "weight": 0.5}],
        "condition": condition,
    }
    with pytest.raises(ValueError, match="condition"):
        ExperimentSpec.model_validate(spec)
    with pytest.raises(ValueError, match="condition"):
        ExperimentPatch.model_validate({"condition": condition})


def test_version_strings_order_as_versions() -> None:
    ordered = ["0.9.9", "1.0.0-alpha", "1.0.0-beta.2", "1.0.0-beta.10", "1.0.0", "v1.0.1", "10.0"]
    padded = [padded_version(v) for v in ordered]
    assert padded == sorted(padded)
    assert padded_version("1.2.3+build.7") == padded_version("1.2.3")
