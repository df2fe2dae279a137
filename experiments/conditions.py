"""Targeting conditions in GrowthBook's syntax: evaluation on visitor attributes, and validation.

A condition is a MongoDB-like JSON object. Its keys are dotted attribute paths (``"user.age"``)
or the logical operators ``$and``, ``$or``, ``$nor`` (lists of conditions) and ``$not`` (one
condition). A path's value is either a literal, compared as JSON (``{"country": "UK"}``), or an
operator object whose keys all start with ``$``: ``$eq $ne $in $nin $ini $nini $all $alli $gt
$gte $lt $lte $regex $regexi $notRegex $notRegexi $exists $type $size $elemMatch $not``, the
version comparisons ``$veq $vne $vgt $vgte $vlt $vlte`` and the saved-group tests ``$inGroup
$notInGroup``. Evaluation follows GrowthBook's SDKs, including their JavaScript semantics where
types differ: a missing attribute reads as ``null``, ``<``/``>`` compare two strings as text
and anything else as numbers (``null`` as 0), so ``{"n": {"$gt": 5}}`` holds for ``"8"``. Every
``evalCondition`` case of GrowthBook's cross-SDK conformance file passes.

:func:`evaluate` never raises: an operator it does not know, or a regular expression that does
not compile, makes the condition false, as in the SDKs. :func:`check_condition` is what a
definition calls first, so such a condition is refused with the operator and its path instead.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping, Sequence
from functools import lru_cache

__all__ = ["OPERATORS", "check_condition", "evaluate", "padded_version"]

_TYPES = frozenset({"string", "number", "boolean", "array", "object", "null", "undefined"})

OPERATORS = frozenset(
    {
        "$eq",
        "$ne",
        "$lt",
        "$lte",
        "$gt",
        "$gte",
        "$veq",
        "$vne",
        "$vlt",
        "$vlte",
        "$vgt",
        "$vgte",
        "$in",
        "$nin",
        "$ini",
        "$nini",
        "$inGroup",
        "$notInGroup",
        "$all",
        "$alli",
        "$regex",
        "$regexi",
        "$notRegex",
        "$notRegexi",
        "$exists",
        "$type",
        "$size",
        "$elemMatch",
        "$not",
    }
)
"""The operators a path's operator object may use."""

SavedGroups = Mapping[str, Sequence[object]]


# -- evaluation ---------------------------------------------------------------------------------


def evaluate(
    condition: Mapping[str, object],
    attributes: Mapping[str, object],
    saved_groups: SavedGroups | None = None,
) -> bool:
    """Whether ``attributes`` satisfy ``condition`` (every key of it must hold)."""
    groups: SavedGroups = saved_groups or {}
    if not isinstance(attributes, dict):
        attributes = dict(attributes)
    for key, expected in condition.items():
        if key == "$or":
            if not _any(attributes, expected, groups):
                return False
        elif key == "$nor":
            if _any(attributes, expected, groups):
                return False
        elif key == "$and":
            if not _all(attributes, expected, groups):
                return False
        elif key == "$not":
            if isinstance(expected, dict) and evaluate(expected, attributes, groups):
                return False
        elif not _value_holds(expected, _path(attributes, key), groups):
            return False
    return True


def _any(attributes: Mapping[str, object], conditions: object, groups: SavedGroups) -> bool:
    if not isinstance(conditions, list) or not conditions:
        return True
    return any(isinstance(c, dict) and evaluate(c, attributes, groups) for c in conditions)


def _all(attributes: Mapping[str, object], conditions: object, groups: SavedGroups) -> bool:
    if not isinstance(conditions, list):
        return True
    return all(isinstance(c, dict) and evaluate(c, attributes, groups) for c in conditions)


def _path(attributes: Mapping[str, object], path: str) -> object:
    current: object = attributes
    for part in path.split("."):
        if not isinstance(current, dict) or part not in current:
            return None
        current = current[part]
    return current


def _is_operator_object(value: object) -> bool:
    return (
        isinstance(value, dict)
        and len(value) > 0
        and all(isinstance(k, str) and k.startswith("$") for k in value)
    )


def _value_holds(expected: object, actual: object, groups: SavedGroups) -> bool:
    if isinstance(expected, dict) and _is_operator_object(expected):
        return all(_operator_holds(op, actual, arg, groups) for op, arg in expected.items())
    return _same(expected, actual)


def _same(a: object, b: object) -> bool:
    """JSON equality: ``true`` is not ``1``, objects compare by content in any key order."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a is b
    if isinstance(a, int | float) and isinstance(b, int | float):
        return a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    return type(a) is type(b) and a == b


def _type_of(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    return "object"


def _number(value: object) -> float:
    """JavaScript's ToNumber for JSON values (NaN where JavaScript gives NaN)."""
    if value is None:
        return 0.0
    if isinstance(value, bool):
        return 1.0 if value else 0.0
    if isinstance(value, int | float):
        return float(value)
    if isinstance(value, str):
        text = value.strip()
        if not text:
            return 0.0
        if "_" in text:  # Python reads 1_000 as a number, JavaScript does not
            return math.nan
        try:
            return float(int(text, 16)) if text.lower().startswith("0x") else float(text)
        except ValueError:
            return math.nan
    return math.nan


def _order(actual: object, expected: object) -> int | None:
    """-1, 0 or 1 as JavaScript's ``<``/``>`` would order the two; None when unordered."""
    if isinstance(actual, str) and isinstance(expected, str):
        a, b = actual.encode("utf-16-be"), expected.encode("utf-16-be")
        return (a > b) - (a < b)
    x, y = _number(actual), _number(expected)
    if math.isnan(x) or math.isnan(y):
        return None
    return (x > y) - (x < y)


def _compares(actual: object, expected: object, accept: tuple[int, ...]) -> bool:
    order = _order(actual, expected)
    return order is not None and order in accept


_COMPARISONS: dict[str, tuple[int, ...]] = {
    "$lt": (-1,),
    "$lte": (-1, 0),
    "$gt": (1,),
    "$gte": (0, 1),
}

_VERSION_COMPARISONS: dict[str, tuple[int, ...]] = {
    "$veq": (0,),
    "$vne": (-1, 1),
    "$vlt": (-1,),
    "$vlte": (-1, 0),
    "$vgt": (1,),
    "$vgte": (0, 1),
}


def padded_version(value: object) -> str:
    """A version string that orders as text the way the versions order.

    A leading ``v`` and build metadata (``+...``) are dropped, the rest split at ``.`` and
    ``-``; numeric parts are left-padded to five characters, and a plain ``X.Y.Z`` gets a final
    ``~`` (the highest printable ASCII character) so that it sorts after its pre-releases.
    """
    if isinstance(value, str):
        return _padded_text(value)
    return _padded(value)


@lru_cache(maxsize=4096)
def _padded_text(value: str) -> str:
    return _padded(value)


def _padded(value: object) -> str:
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = _js_string(value)
    if not isinstance(value, str) or not value:
        value = "0"
    parts = re.split(r"[-.]", re.sub(r"^v|\+.*$", "", value))
    if len(parts) == 3:
        parts.append("~")
    return "-".join(p.rjust(5) if re.fullmatch(r"[0-9]+", p) else p for p in parts)


def _js_string(value: object) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return ",".join("" if v is None else _js_string(v) for v in value)
    if isinstance(value, dict):
        return "[object Object]"
    return str(value)


@lru_cache(maxsize=1024)
def _regex(pattern: str, ignore_case: bool) -> re.Pattern[str] | None:
    try:
        return re.compile(pattern, re.IGNORECASE if ignore_case else 0)
    except re.error:
        return None


def _matches(actual: object, pattern: object, ignore_case: bool) -> bool:
    compiled = _regex(pattern, ignore_case) if isinstance(pattern, str) else None
    return compiled is not None and compiled.search(_js_string(actual)) is not None


def _lower(value: object) -> object:
    return value.lower() if isinstance(value, str) else value


def _is_in(actual: object, expected: Sequence[object], ignore_case: bool = False) -> bool:
    if ignore_case:
        expected = [_lower(e) for e in expected]
        actual = [_lower(a) for a in actual] if isinstance(actual, list) else _lower(actual)
    if isinstance(actual, list):
        return any(_member(a, expected) for a in actual)
    return _member(actual, expected)


def _member(value: object, items: Sequence[object]) -> bool:
    return any(_same_scalar(value, item) for item in items)


def _same_scalar(a: object, b: object) -> bool:
    """JavaScript's ``includes`` equality: lists and objects are never equal by content."""
    if isinstance(a, list | dict) or isinstance(b, list | dict):
        return False
    return _same(a, b)


def _operator_holds(op: str, actual: object, expected: object, groups: SavedGroups) -> bool:
    if op == "$eq":
        return _same_scalar(actual, expected) or (actual is None and expected is None)
    if op == "$ne":
        return not (_same_scalar(actual, expected) or (actual is None and expected is None))
    if op in _COMPARISONS:
        return _compares(actual, expected, _COMPARISONS[op])
    if op in _VERSION_COMPARISONS:
        a, b = padded_version(actual), padded_version(expected)
        return ((a > b) - (a < b)) in _VERSION_COMPARISONS[op]
    if op in ("$in", "$nin", "$ini", "$nini"):
        if not isinstance(expected, list):
            return False
        found = _is_in(actual, expected, ignore_case=op.endswith("i"))
        return found if op in ("$in", "$ini") else not found
    if op in ("$inGroup", "$notInGroup"):
        members = groups.get(expected, []) if isinstance(expected, str) else []
        found = _is_in(actual, list(members))
        return found if op == "$inGroup" else not found
    if op in ("$all", "$alli"):
        return _all_of(actual, expected, op == "$alli", groups)
    if op in ("$regex", "$regexi", "$notRegex", "$notRegexi"):
        found = _matches(actual, expected, ignore_case=op.endswith("i"))
        return not found if op.startswith("$not") else found
    if op == "$exists":
        return (actual is not None) if expected else (actual is None)
    if op == "$type":
        return _type_of(actual) == expected
    if op == "$size":
        return isinstance(actual, list) and _value_holds(expected, len(actual), groups)
    if op == "$elemMatch":
        return _elem_match(actual, expected, groups)
    if op == "$not":
        return not _value_holds(expected, actual, groups)
    return False


def _all_of(actual: object, expected: object, ignore_case: bool, groups: SavedGroups) -> bool:
    if not isinstance(actual, list) or not isinstance(expected, list):
        return False
    for wanted in expected:
        if ignore_case:
            found = any(_same(_lower(wanted), _lower(a)) for a in actual)
        else:
            found = any(_value_holds(wanted, a, groups) for a in actual)
        if not found:
            return False
    return True


def _elem_match(actual: object, expected: object, groups: SavedGroups) -> bool:
    if not isinstance(actual, list) or not isinstance(expected, dict):
        return False
    if _is_operator_object(expected):
        return any(_value_holds(expected, item, groups) for item in actual)
    return any(isinstance(item, dict) and evaluate(expected, item, groups) for item in actual)


# -- validation ---------------------------------------------------------------------------------


def check_condition(condition: Mapping[str, object], field: str = "condition") -> None:
    """Raise ``ValueError`` naming the path and the operator if ``condition`` cannot be evaluated.

    Refused: an unknown operator, a regular expression that does not compile, a logical operator
    without a list of conditions (``$and``/``$or``/``$nor``) or a condition (``$not``), a list
    operator without a list, a ``$type`` that is no JSON type, and saved groups
    (``$inGroup``/``$notInGroup``), which Abacus definitions do not carry.
    """
    for key, value in condition.items():
        where = f"{field}.{key}"
        if key in ("$and", "$or", "$nor"):
            if not isinstance(value, list) or not all(isinstance(c, dict) for c in value):
                raise ValueError(f"{where}: {key} takes a list of conditions, got {value!r:.80}")
            for i, sub in enumerate(value):
                check_condition(sub, f"{where}.{i}")
        elif key == "$not":
            if not isinstance(value, Mapping):
                raise ValueError(f"{where}: $not takes a condition object, got {value!r:.80}")
            check_condition(value, where)
        elif isinstance(value, Mapping) and _is_operator_object(value):
            for op, arg in value.items():
                _check_operator(op, arg, f"{where}")


def _check_operator(op: str, arg: object, where: str) -> None:
    if op not in OPERATORS:
        raise ValueError(
            f"{where}: unknown operator {op!r}; allowed: {', '.join(sorted(OPERATORS))}"
        )
    if op in ("$inGroup", "$notInGroup"):
        raise ValueError(f"{where}: operator {op!r} needs saved groups, which Abacus does not have")
    if op in ("$in", "$nin", "$ini", "$nini", "$all", "$alli") and not isinstance(arg, list):
        raise ValueError(f"{where}: operator {op!r} takes a list, got {arg!r:.80}")
    regex = op in ("$regex", "$regexi", "$notRegex", "$notRegexi")
    if regex and (not isinstance(arg, str) or _regex(arg, op.endswith("i")) is None):
        raise ValueError(f"{where}: operator {op!r} has an invalid regular expression {arg!r:.80}")
    if op == "$type" and arg not in _TYPES:
        raise ValueError(
            f"{where}: operator '$type' takes one of {sorted(_TYPES)}, got {arg!r:.80}"
        )
    if op == "$elemMatch":
        if not isinstance(arg, Mapping):
            raise ValueError(f"{where}: operator '$elemMatch' takes an object, got {arg!r:.80}")
        if _is_operator_object(arg):
            for inner, inner_arg in arg.items():
                _check_operator(inner, inner_arg, f"{where}.$elemMatch")
        else:
            check_condition(arg, f"{where}.$elemMatch")
    if op in ("$not", "$size") and isinstance(arg, Mapping) and _is_operator_object(arg):
        for inner, inner_arg in arg.items():
            _check_operator(inner, inner_arg, f"{where}.{op}")
    if op == "$all" and isinstance(arg, list):
        for item in arg:
            if isinstance(item, dict) and _is_operator_object(item):
                for inner, inner_arg in item.items():
                    _check_operator(inner, inner_arg, f"{where}.$all")
