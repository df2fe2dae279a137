"""Every Redis key Abacus uses is built here; no other module writes a key literal.

Keyspace (``P`` is the configurable prefix, default ``abacus``; ``E`` an experiment key; ``G``
its generation, a number that grows every time an experiment with that key is created; ``T`` a
shard's hash tag, ``E:S:N`` for shard ``S`` in ``[0, shards)``; ``L`` a visitor slice in
``[0, slices)`` of the shard; ``W`` a dedup window part; ``D`` a UTC day ``YYYYMMDD``; ``A`` an
activity shard's tag ``_activity:A:N``; ``R`` the definitions hash's name,
``P:definitions``):

=============================  ======  ===========================================================
key                            type    contents
=============================  ======  ===========================================================
``P:definitions``              hash    ``E`` -> definition JSON; ``_version`` a counter bumped on
                                       every write (cache invalidation); ``_gen:E`` the last
                                       generation of ``E``; ``_deleted:E:G`` the definition of a
                                       deleted generation whose data is still being reclaimed;
                                       ``_bandit:E:G`` a bandit's period history (JSON)
``P:{T}:G:a:L``                hash    packed visitor -> ``exposed_ms * 32 + V`` (first exposure
                                       wins); a few hundred fields, so it stays a listpack
``P:{T}:G:s:L:EVENT``          hash    packed visitor -> ``"count:sum"`` of EVENT since exposure
``P:{T}:G:i:L:W``              hash    event-id digest -> 1, the ids first seen in window part W;
                                       expires once W is older than the dedup window
``P:{T}:G:agg``                hash    ``n:V`` exposed visitors; ``M:V:sum``, ``M:V:ss`` sum and
                                       sum of squares of per-visitor metric values; ``M:V:xy``
                                       cross-product sum of a ratio metric's two parts
``P:{T}:G:d:D``                hash    the same fields, holding that UTC day's increments
``P:{T}:G:days``               set     the days that have a ``d:`` hash
``P:{T}:G:x:K``                hash    the ``agg`` fields of dimension ``K`` (its position in the
                                       definition) per slice ``C`` (one character): ``C:n:V``,
                                       ``C:M:V:sum``, ... (only for experiments with dimensions)
``P:{E}:G:dims``               hash    the dimension values' slices: ``K:value`` -> slice index
                                       (the first ``max_values`` values), ``#K`` -> how many
``P:{T}:G:log``                stream  raw log, one field ``x`` (exposure) or ``e`` (credited
                                       event) holding a packed entry (see ``store.codec``)
``P:{A}:log``                  stream  every tracked event of every visitor, credited or not:
                                       the pre-exposure history (field ``a``, packed)
``P:{A}:i:L:W``                hash    the activity log's event-id digests, as ``P:{T}:G:i:L:W``
``P:client-keys``              hash    client key -> JSON ``{"name", "created_at"}``: the public
                                       keys GrowthBook SDKs fetch the features payload with
``P:{_auth:K}:s:H``            string  a browser session of key ``K`` (a digest of the key):
                                       the key's session epoch when it was opened; ``H`` is
                                       the SHA-256 of the session token; expires with the session
``P:{_auth:K}:epoch``          string  the session epoch of ``K``; bumping it revokes every
                                       session of ``K`` at once
``P:{_login:C}:failures``      string  failed sign-ins from client ``C`` in the current window
``P:{R}:keys``                 hash    API key id -> JSON ``{"name", "role", "digest",
                                       "created_at"}`` (the SHA-256 of the secret, never it)
``P:{R}:links``                hash    share link id -> JSON ``{"experiment", "expires_at", ...}``
``P:{R}:secret``               string  the workspace secret share links are signed with
``P:{R}:audit:E``              list    the audit entries (JSON) of experiment ``E``, newest first
``P:{R}:audit``                list    every audit entry (JSON), newest first, bounded
``P:{_notify}:webhook``        string  the workspace's webhook: JSON ``{"url", "secret",
                                       "updated_at"}``
``P:{_notify}:sent``           hash    ``E:G:KIND[:M]`` -> the delivery id of that notification:
                                       claimed once (``HSETNX``), never re-sent
``P:{_notify}:deliveries``     stream  the last webhook delivery attempts (field ``d``, JSON),
                                       capped with ``MAXLEN``
=============================  ======  ===========================================================

The access and audit keys carry the definitions hash's name as their hash tag (``R``), so they
share its slot: a definition write and its audit entry are one script, and so are a key's or a
share link's record and theirs.

The hash tag puts everything one Lua script touches into one cluster slot. Visitors spread over
the shards (and within a shard over its slices) by a CRC-32 of the visitor id. Each shard's tag
ends with the smallest number ``N`` that puts its slot in the shard's own ``1/shards`` of the
16,384 slots, so one experiment's shards tile the slot space evenly and any cluster that splits
the slots into equal ranges gets an equal share of every experiment. The generation sits outside
the tag: a re-created experiment has new keys in the same slots, and a deleted generation is
unreachable the moment its definition is gone, whatever is left to reclaim. Everything of a
generation is enumerable from its definition (shards x slices x events x window parts, the days
set), so nothing needs a SCAN. The activity shards' tag starts with ``_``, which no experiment
key can, so the two never collide.
"""

from __future__ import annotations

import binascii
import zlib
from dataclasses import dataclass, field
from functools import lru_cache

from experiments.bounded import BoundedDict

__all__ = [
    "CLUSTER_SLOTS",
    "ActivityKeys",
    "Keyspace",
    "ShardKeys",
    "VisitorPlace",
    "key_slot",
    "place_of",
    "shard_of",
]

CLUSTER_SLOTS = 16384


def key_slot(key: str) -> int:
    """The Redis Cluster slot of ``key``: CRC-16 (XMODEM) of its hash tag, mod 16384."""
    start = key.find("{")
    if start >= 0:
        end = key.find("}", start + 1)
        if end > start + 1:
            key = key[start + 1 : end]
    return binascii.crc_hqx(key.encode(), 0) % CLUSTER_SLOTS


@dataclass(frozen=True, slots=True)
class VisitorPlace:
    """Where a visitor's state lives: its shard and its slice within the shard."""

    shard: int
    slice: int


@lru_cache(maxsize=8192)
def place_of(visitor_id: str, shards: int, slices: int) -> VisitorPlace:
    """The shard and slice of a visitor; independent of the bucketing hash."""
    h = zlib.crc32(visitor_id.encode("utf-8", "surrogatepass"))
    return VisitorPlace(h % shards, (h // shards) % slices)


def shard_of(visitor_id: str, shards: int) -> int:
    """The shard holding a visitor's state."""
    return zlib.crc32(visitor_id.encode("utf-8", "surrogatepass")) % shards


@lru_cache(maxsize=4096)
def _tag(name: str, shard: int, shards: int) -> str:
    """``name:shard:N`` with the smallest N whose slot is in the shard's range of slots."""
    low = shard * CLUSTER_SLOTS // shards
    high = (shard + 1) * CLUSTER_SLOTS // shards
    nonce = 0
    while True:
        tag = f"{name}:{shard}:{nonce}"
        if low <= binascii.crc_hqx(tag.encode(), 0) % CLUSTER_SLOTS < high:
            return tag
        nonce += 1


@dataclass(frozen=True, slots=True)
class ShardKeys:
    """The keys of one shard of one generation of an experiment (the fixed ones built once:
    every exposure and event names them)."""

    base: str
    agg: str = field(init=False, repr=False, compare=False)
    days: str = field(init=False, repr=False, compare=False)
    log: str = field(init=False, repr=False, compare=False)
    _heads: dict[int, tuple[str, ...]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        object.__setattr__(self, "agg", f"{self.base}:agg")
        object.__setattr__(self, "days", f"{self.base}:days")
        object.__setattr__(self, "log", f"{self.base}:log")

    def head(self, dimensions: int) -> tuple[str, ...]:
        """``agg``, ``days``, ``log`` and the first ``dimensions`` dimension aggregates: the
        keys every event's write to this shard names first (built once per count)."""
        found = self._heads.get(dimensions)
        if found is None:
            dims = (self.dimension(d) for d in range(dimensions))
            found = self._heads[dimensions] = (self.agg, self.days, self.log, *dims)
        return found

    def day(self, day: str) -> str:
        return f"{self.base}:d:{day}"

    def dimension(self, position: int) -> str:
        return f"{self.base}:x:{position}"

    def assign(self, slice_: int) -> str:
        return f"{self.base}:a:{slice_}"

    def state(self, slice_: int, event: str) -> str:
        return f"{self.base}:s:{slice_}:{event}"

    def event_ids(self, slice_: int, part: int) -> str:
        return f"{self.base}:i:{slice_}:{part}"


@dataclass(frozen=True, slots=True)
class ActivityKeys:
    """The keys of one shard of the visitor-sharded activity log."""

    base: str

    @property
    def log(self) -> str:
        return f"{self.base}:log"

    def event_ids(self, slice_: int, part: int) -> str:
        return f"{self.base}:i:{slice_}:{part}"


_MAX_SHARD_KEYS = 65_536
"""Shard key sets a keyspace keeps built (emptied past it; 64 per experiment generation)."""


@dataclass(frozen=True, slots=True)
class Keyspace:
    prefix: str = "abacus"
    _shards: BoundedDict[tuple[str, int, int, int], ShardKeys] = field(
        default_factory=lambda: BoundedDict(_MAX_SHARD_KEYS), init=False, repr=False, compare=False
    )

    @property
    def definitions(self) -> str:
        return f"{self.prefix}:definitions"

    @property
    def client_keys(self) -> str:
        return f"{self.prefix}:client-keys"

    def shard(self, experiment: str, generation: int, shard: int, shards: int) -> ShardKeys:
        place = (experiment, generation, shard, shards)
        keys = self._shards.get(place)
        if keys is None:  # asked on every exposure and event: built once
            tag = _tag(experiment, shard, shards)
            keys = self._shards.put(place, ShardKeys(f"{self.prefix}:{{{tag}}}:{generation}"))
        return keys

    def dimension_values(self, experiment: str, generation: int) -> str:
        """The registry of an experiment generation's dimension values (its own slot)."""
        return f"{self.prefix}:{{{experiment}}}:{generation}:dims"

    def activity(self, shard: int, shards: int) -> ActivityKeys:
        return ActivityKeys(f"{self.prefix}:{{{_tag('_activity', shard, shards)}}}")

    @staticmethod
    def generation_field(experiment: str) -> str:
        """The ``P:definitions`` field counting the generations of ``experiment``."""
        return f"_gen:{experiment}"

    @staticmethod
    def bandit_field(experiment: str, generation: int) -> str:
        """The ``P:definitions`` field holding the period history of a bandit experiment."""
        return f"_bandit:{experiment}:{generation}"

    @staticmethod
    def deleted_prefix(experiment: str) -> str:
        """``_deleted:E:``: a deleted generation's definition is kept under this plus G."""
        return f"_deleted:{experiment}:"

    def session(self, key_id: str, token_digest: str) -> str:
        return f"{self.prefix}:{{_auth:{key_id}}}:s:{token_digest}"

    def session_epoch(self, key_id: str) -> str:
        return f"{self.prefix}:{{_auth:{key_id}}}:epoch"

    def login_failures(self, client: str) -> str:
        return f"{self.prefix}:{{_login:{client}}}:failures"

    @property
    def _access(self) -> str:
        return f"{self.prefix}:{{{self.definitions}}}"

    @property
    def api_keys(self) -> str:
        return f"{self._access}:keys"

    @property
    def share_links(self) -> str:
        return f"{self._access}:links"

    @property
    def workspace_secret(self) -> str:
        return f"{self._access}:secret"

    @property
    def audit_all(self) -> str:
        return f"{self._access}:audit"

    def audit(self, experiment: str) -> str:
        return f"{self._access}:audit:{experiment}"

    @property
    def webhook(self) -> str:
        return f"{self.prefix}:{{_notify}}:webhook"

    @property
    def webhook_sent(self) -> str:
        return f"{self.prefix}:{{_notify}}:sent"

    @property
    def webhook_deliveries(self) -> str:
        return f"{self.prefix}:{{_notify}}:deliveries"

    def pattern(self) -> str:
        """A SCAN pattern matching every key of this keyspace (tests and tools, never requests)."""
        return f"{self.prefix}:*"
