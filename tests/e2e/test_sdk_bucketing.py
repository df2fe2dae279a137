"""The SDK's JavaScript bucketing, run in headless Chromium, against Python's: every GrowthBook
conformance row and 100k random visitor ids (ASCII, accented, CJK and astral characters)."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from experiments.assignment import decide
from experiments.bucketing import (
    bucket_ranges,
    choose_variant,
    equal_weights,
    hash_bucket,
    in_namespace,
)
from experiments.definitions import Experiment
from service.api.routers.sdk import public_definition, sdk_source

pytestmark = pytest.mark.browser

ROOT = Path(__file__).resolve().parents[2]
SDK = sdk_source().decode()
CASES: dict[str, Any] = json.loads((ROOT / "tests" / "data" / "growthbook-cases.json").read_text())


@pytest.fixture(scope="module")
def js(browser: Any) -> Iterator[Any]:
    """A page holding only the SDK, on about:blank: no cookies, no storage, no network."""
    context = browser.new_context()
    page = context.new_page()
    errors: list[str] = []

    def on_console(message: Any) -> None:
        if message.type == "error":
            errors.append(message.text)

    page.on("console", on_console)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.set_content("<!doctype html><title>sdk</title>")
    page.add_script_tag(content=SDK)
    yield page
    context.close()
    assert errors == []


def test_hash_rows(js: Any) -> None:
    rows = CASES["hash"]
    got = js.evaluate(
        "rows => rows.map(([seed, value, version]) => abacus.bucketing.hash(seed, value, version))",
        rows,
    )
    for (seed, value, version, expected), answer in zip(rows, got, strict=True):
        assert answer == expected == hash_bucket(seed, value, version), (seed, value, version)


def test_bucket_range_rows(js: Any) -> None:
    rows = CASES["getBucketRange"]
    got = js.evaluate(
        "rows => rows.map(([, [n, coverage, weights]]) => "
        "abacus.bucketing.bucketRanges(n, coverage, weights))",
        rows,
    )
    for (name, (count, coverage, weights), expected), answer in zip(rows, got, strict=True):
        python = [list(r) for r in bucket_ranges(count, coverage, weights)]
        assert answer == python, name  # bit for bit the same floats
        assert [[round(a, 8), round(b, 8)] for a, b in answer] == [
            [round(a, 8), round(b, 8)] for a, b in expected
        ], name


def test_choose_variation_rows(js: Any) -> None:
    rows = CASES["chooseVariation"]
    got = js.evaluate(
        "rows => rows.map(([, bucket, ranges]) => abacus.bucketing.chooseVariant(bucket, ranges))",
        rows,
    )
    for (name, bucket, ranges, expected), answer in zip(rows, got, strict=True):
        assert answer == expected == choose_variant(bucket, [tuple(r) for r in ranges]), name


def test_equal_weights_rows(js: Any) -> None:
    rows = CASES["getEqualWeights"]
    got = js.evaluate("rows => rows.map(([n]) => abacus.bucketing.equalWeights(n))", rows)
    for (count, expected), answer in zip(rows, got, strict=True):
        assert answer == equal_weights(count), count
        assert [round(w, 8) for w in answer] == [round(w, 8) for w in expected], count


def test_in_namespace_rows(js: Any) -> None:
    rows = CASES["inNamespace"]
    got = js.evaluate(
        "rows => rows.map(([, id, ns]) => abacus.bucketing.inNamespace(id, ns))", rows
    )
    for (name, visitor_id, namespace, expected), answer in zip(rows, got, strict=True):
        assert answer is expected is in_namespace(visitor_id, tuple(namespace)), name


def _random_ids(count: int, rng: random.Random) -> list[str]:
    alphabets = [
        (0x30, 0x7A),  # ASCII digits and letters, some punctuation
        (0xC0, 0x17F),  # accented Latin
        (0x4E00, 0x4FFF),  # CJK
        (0x1F300, 0x1F64F),  # emoji: two UTF-16 code units each
    ]
    ids = []
    for i in range(count):
        kind = i % 4
        if kind == 0:
            ids.append(f"{rng.getrandbits(128):032x}")
        elif kind == 1:
            ids.append(str(rng.randrange(10**12)))
        else:
            length = rng.randint(1, 24)
            ids.append("".join(chr(rng.randint(*rng.choice(alphabets))) for _ in range(length)))
    return ids


def test_100k_random_ids_get_the_same_bucket_and_variant(js: Any) -> None:
    ids = _random_ids(100_000, random.Random(20240605))
    three_way = Experiment.model_validate(
        {
            "key": "three-way",
            "seed": "séed-✓",
            "coverage": 0.8,
            "status": "running",
            "variants": [
                {"key": "a", "weight": 0.5},
                {"key": "b", "weight": 0.3},
                {"key": "c", "weight": 0.2},
            ],
        }
    )
    legacy = Experiment.model_validate(
        {**three_way.model_dump(), "key": "legacy", "hash_version": 1, "coverage": 1.0}
    )
    definitions = [public_definition(e).model_dump(mode="json") for e in (three_way, legacy)]
    # One JSON string each way: Playwright's per-value serialisation of 100k rows is slow.
    got = json.loads(
        js.evaluate(
            """(payload) => {
                const [ids, defs] = JSON.parse(payload);
                return JSON.stringify(ids.map((id) => [
                    abacus.bucketing.hash("buyakilt-filters", id, 2),
                    abacus.bucketing.hash("s", id, 1),
                    abacus.bucketing.decide(defs[0], id),
                    abacus.bucketing.decide(defs[1], id),
                ]));
            }""",
            json.dumps([ids, definitions]),
        )
    )
    assert len(got) == len(ids)
    mismatches = []
    for visitor_id, (v2, v1, variant, legacy_variant) in zip(ids, got, strict=True):
        expected = [
            hash_bucket("buyakilt-filters", visitor_id, 2),
            hash_bucket("s", visitor_id, 1),
            _variant_key(three_way, visitor_id),
            _variant_key(legacy, visitor_id),
        ]
        if [v2, v1, variant, legacy_variant] != expected:
            mismatches.append((visitor_id, [v2, v1, variant, legacy_variant], expected))
    assert mismatches == []
    # The sample really covered every path: non-enrolled visitors and every variant.
    assert {row[2] for row in got} == {"a", "b", "c", None}


def _variant_key(experiment: Experiment, visitor_id: str) -> str | None:
    return decide(experiment, visitor_id).variant


def test_decide_serves_the_winner_of_a_stopped_experiment_and_nothing_when_paused(js: Any) -> None:
    base = {
        "key": "k",
        "variants": [{"key": "control", "weight": 0.5}, {"key": "filters", "weight": 0.5}],
    }
    stopped = public_definition(
        Experiment.model_validate({**base, "status": "stopped", "winner": "filters"})
    ).model_dump(mode="json")
    paused = public_definition(Experiment.model_validate({**base, "status": "paused"})).model_dump(
        mode="json"
    )
    got = js.evaluate(
        """([stopped, paused]) => ["v1", "v2", "v3"].map((id) => [
            abacus.bucketing.decide(stopped, id), abacus.bucketing.decide(paused, id)])""",
        [stopped, paused],
    )
    assert got == [["filters", None]] * 3


def test_the_sdk_never_throws_without_cookies_or_storage(js: Any) -> None:
    # about:blank has an opaque origin: document.cookie and localStorage both throw there.
    result = js.evaluate(
        """async () => {
            const id = abacus.visitorId();
            const tracked = await abacus.track("bad name!");
            const value = await abacus.track("purchase", { value: Infinity });
            return [typeof id, id.length, tracked, value, abacus.pending()];
        }"""
    )
    assert result == ["string", 36, False, False, 0]
