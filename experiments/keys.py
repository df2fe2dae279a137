"""Every Redis key Abacus uses is built here; no other module writes a key literal.

Keyspace (``P`` is the configurable prefix, default ``abacus``; ``E`` an experiment key;
``S`` a shard number in ``[0, shards)``; ``V`` a variant index; ``M`` a metric name; ``A`` an
activity shard in ``[0, activity_shards)``, chosen by the visitor):

=============================  ======  ===========================================================
key                            type    contents
=============================  ======  ===========================================================
``P:definitions``              hash    experiment key -> definition JSON; field ``_version`` is a
                                       counter bumped on every write (cache invalidation)
``P:{E:S}:assign``             hash    visitor -> ``"V:exposed_ms"`` (first exposure wins)
``P:{E:S}:state:EVENT``        hash    visitor -> ``"count:sum"`` of that event since exposure
``P:{E:S}:agg``                hash    ``n:V`` exposed visitors; ``M:V:sum``, ``M:V:ss`` sum and
                                       sum of squares of per-visitor metric values; ``M:V:xy``
                                       cross-product sum of a ratio metric's two parts
``P:{E:S}:day:YYYYMMDD``       hash    the same fields, holding that UTC day's increments
``P:{E:S}:days``               set     the days that have a ``day:`` hash
``P:{E:S}:eid:ID``             string  present while event id ``ID`` is remembered (dedup window)
``P:{E:S}:log``                stream  raw log: every exposure (``type=exposure``, visitor,
                                       variant, ``ts`` ms, attributes JSON) and every credited
                                       event (``type=event``, visitor, variant, ``ts``, event,
                                       value), appended by the script that updates the aggregates
``P:{_activity:A}:log``        stream  every tracked event of every visitor, credited or not
                                       (visitor, event, value, ``ts``): the pre-exposure history
``P:{_activity:A}:eid:ID``     string  present while event id ``ID`` is remembered by the
                                       activity log (dedup window)
=============================  ======  ===========================================================

The ``{E:S}`` hash tag puts everything one Lua script touches into one cluster slot, while the
shards of a busy experiment spread over the cluster. Read-outs sum the shards. The activity
shards' tag starts with ``_``, which no experiment key can, so the two never collide.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass

__all__ = ["ActivityKeys", "Keyspace", "ShardKeys", "shard_of"]


def shard_of(visitor_id: str, shards: int) -> int:
    """The shard holding a visitor's state; independent of the bucketing hash."""
    return zlib.crc32(visitor_id.encode("utf-8", "surrogatepass")) % shards


@dataclass(frozen=True, slots=True)
class ShardKeys:
    """The keys of one experiment shard."""

    base: str

    @property
    def assign(self) -> str:
        return f"{self.base}:assign"

    @property
    def agg(self) -> str:
        return f"{self.base}:agg"

    @property
    def days(self) -> str:
        return f"{self.base}:days"

    @property
    def log(self) -> str:
        return f"{self.base}:log"

    def state(self, event: str) -> str:
        return f"{self.base}:state:{event}"

    def day(self, day: str) -> str:
        return f"{self.base}:day:{day}"

    def event_id(self, event_id: str) -> str:
        return f"{self.base}:eid:{event_id}"

    @property
    def no_event_id(self) -> str:
        # A key in the same slot that is never written, passed when a call has no event id.
        return f"{self.base}:eid"


@dataclass(frozen=True, slots=True)
class ActivityKeys:
    """The keys of one shard of the visitor-sharded activity log."""

    base: str

    @property
    def log(self) -> str:
        return f"{self.base}:log"

    def event_id(self, event_id: str) -> str:
        return f"{self.base}:eid:{event_id}"

    @property
    def no_event_id(self) -> str:
        # A key in the same slot that is never written, passed when a call has no event id.
        return f"{self.base}:eid"


@dataclass(frozen=True, slots=True)
class Keyspace:
    prefix: str = "abacus"

    @property
    def definitions(self) -> str:
        return f"{self.prefix}:definitions"

    def shard(self, experiment: str, shard: int) -> ShardKeys:
        return ShardKeys(f"{self.prefix}:{{{experiment}:{shard}}}")

    def activity(self, shard: int) -> ActivityKeys:
        return ActivityKeys(f"{self.prefix}:{{_activity:{shard}}}")

    def pattern(self) -> str:
        """A SCAN pattern matching every key of this keyspace."""
        return f"{self.prefix}:*"
