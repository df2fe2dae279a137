"""The hot paths' caches stay within their limit whatever keys come."""

from __future__ import annotations

from experiments.bounded import BoundedDict


def test_a_full_bounded_dict_is_emptied_before_the_next_entry() -> None:
    cache: BoundedDict[str, int] = BoundedDict(3)
    assert [cache.put(key, n) for n, key in enumerate("abc")] == [0, 1, 2]
    assert cache == {"a": 0, "b": 1, "c": 2}
    assert cache.put("d", 3) == 3
    assert cache == {"d": 3}
    assert cache.get("a") is None
    assert cache.put("d", 4) == 4 and len(cache) == 1


def test_a_bounded_dict_never_holds_more_than_its_limit() -> None:
    cache: BoundedDict[int, int] = BoundedDict(100)
    for n in range(10_000):
        cache.put(n, n)
        assert len(cache) <= 100
    assert cache[9_999] == 9_999
