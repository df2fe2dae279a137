"""GrowthBook cross-SDK conformance rows for hashing and bucket ranges."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from experiments.bucketing import (
    bucket_ranges,
    choose_variant,
    equal_weights,
    hash_bucket,
    in_namespace,
)

_SHARED = Path(__file__).resolve().parents[3] / "shared" / "conformance" / "growthbook-cases.json"
_LOCAL = Path(__file__).resolve().parents[1] / "data" / "growthbook-cases.json"
CASES: dict[str, Any] = json.loads((_SHARED if _SHARED.exists() else _LOCAL).read_text())


def test_local_copy_matches_shared_cases() -> None:
    if not _SHARED.exists():
        pytest.skip("shared/ is not beside the checkout; the local copy is used")
    assert json.loads(_LOCAL.read_text()) == CASES


@pytest.mark.parametrize(("seed", "value", "version", "expected"), CASES["hash"])
def test_hash(seed: str, value: str, version: int, expected: float | None) -> None:
    assert hash_bucket(seed, value, version) == expected


@pytest.mark.parametrize(("name", "args", "expected"), CASES["getBucketRange"])
def test_bucket_ranges(name: str, args: list[Any], expected: list[list[float]]) -> None:
    count, coverage, weights = args
    got = [[round(a, 8), round(b, 8)] for a, b in bucket_ranges(count, coverage, weights)]
    assert got == [[round(a, 8), round(b, 8)] for a, b in expected], name


@pytest.mark.parametrize(("name", "bucket", "ranges", "expected"), CASES["chooseVariation"])
def test_choose_variant(name: str, bucket: float, ranges: list[list[float]], expected: int) -> None:
    assert choose_variant(bucket, [(r[0], r[1]) for r in ranges]) == expected, name


@pytest.mark.parametrize(("count", "expected"), CASES["getEqualWeights"])
def test_equal_weights(count: int, expected: list[float]) -> None:
    assert [round(w, 8) for w in equal_weights(count)] == [round(w, 8) for w in expected]


@pytest.mark.parametrize(("name", "visitor_id", "namespace", "expected"), CASES["inNamespace"])
def test_in_namespace(name: str, visitor_id: str, namespace: list[Any], expected: bool) -> None:
    assert in_namespace(visitor_id, (namespace[0], namespace[1], namespace[2])) is expected, name
