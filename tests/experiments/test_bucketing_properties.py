"""Invariants of bucketing that must hold for every input, not just the conformance rows."""

from __future__ import annotations

from collections import Counter

from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.stats import chisquare

from experiments.bucketing import bucket_ranges, choose_variant, fnv1a32, hash_bucket

visitor_ids = st.text(min_size=1, max_size=40)
seeds = st.text(max_size=20)


@given(seed=seeds, visitor=visitor_ids, version=st.sampled_from([1, 2]))
def test_hash_is_deterministic_and_in_range(seed: str, visitor: str, version: int) -> None:
    bucket = hash_bucket(seed, visitor, version)
    assert bucket is not None and 0 <= bucket < 1
    assert hash_bucket(seed, visitor, version) == bucket


@given(text=st.text(max_size=30))
def test_fast_paths_equal_the_utf16_definition(text: str) -> None:
    # the definition: fold every UTF-16 code unit, whatever the characters
    h = 0x811C9DC5
    data = text.encode("utf-16-le", "surrogatepass")
    for i in range(0, len(data), 2):
        h = ((h ^ (data[i] | data[i + 1] << 8)) * 0x01000193) & 0xFFFFFFFF
    assert fnv1a32(text) == h


@given(
    visitor=visitor_ids,
    weights=st.lists(st.integers(1, 10), min_size=2, max_size=5),
    low=st.floats(0, 1),
    high=st.floats(0, 1),
)
@settings(max_examples=300)
def test_ramping_coverage_up_never_moves_an_enrolled_visitor(
    visitor: str, weights: list[int], low: float, high: float
) -> None:
    low, high = sorted((low, high))
    w = [x / sum(weights) for x in weights]
    bucket = hash_bucket("exp", visitor)
    assert bucket is not None
    before = choose_variant(bucket, bucket_ranges(len(w), low, w))
    after = choose_variant(bucket, bucket_ranges(len(w), high, w))
    if before >= 0:
        assert after == before


def test_split_frequency_of_100k_visitors_matches_weights() -> None:
    weights = [0.2, 0.3, 0.5]
    ranges = bucket_ranges(3, 1.0, weights)
    counts = Counter(
        choose_variant(hash_bucket("split", f"user-{i}") or 0.0, ranges) for i in range(100_000)
    )
    observed = [counts[i] for i in range(3)]
    assert chisquare(observed, [w * 100_000 for w in weights]).pvalue > 0.001


def test_different_seeds_randomise_independently() -> None:
    ranges = bucket_ranges(2, 1.0, [0.5, 0.5])
    pairs = Counter(
        (
            choose_variant(hash_bucket("a", f"v{i}") or 0.0, ranges),
            choose_variant(hash_bucket("b", f"v{i}") or 0.0, ranges),
        )
        for i in range(20_000)
    )
    # a 2x2 table of independent assignments: each cell near a quarter
    assert chisquare([pairs[(0, 0)], pairs[(0, 1)], pairs[(1, 0)], pairs[(1, 1)]]).pvalue > 0.001
