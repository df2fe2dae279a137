"""A dict that empties itself when full: the caches of the hot paths.

Assignment and tracking keep things that are cheap to rebuild but wanted on every request: key
strings, the readers of an event name, encoded answers, CORS headers, ``Host`` verdicts. Each
is a :class:`BoundedDict`, read with ``get`` like any dict; :meth:`~BoundedDict.put` stores a
value, first emptying the dict when it already holds ``limit`` entries. Memory stays bounded
whatever clients send (distinct origins, event names, visitors), and a cache emptied costs only
the rebuilds. Emptying rather than evicting one entry at a time keeps reads free of
bookkeeping, and reads are nearly all of the traffic.
"""

from __future__ import annotations

from typing import TypeVar

__all__ = ["BoundedDict"]

K = TypeVar("K")
V = TypeVar("V")


class BoundedDict(dict[K, V]):
    """A dict of at most ``limit`` entries: :meth:`put` empties it when full."""

    __slots__ = ("limit",)

    def __init__(self, limit: int) -> None:
        super().__init__()
        self.limit = limit

    def put(self, key: K, value: V) -> V:
        """Store ``value`` under ``key`` (emptying the dict first if full) and return it."""
        if len(self) >= self.limit:
            self.clear()
        self[key] = value
        return value
