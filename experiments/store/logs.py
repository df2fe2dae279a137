"""The raw logs: an experiment's exposures and credited events, and the activity log.

Two raw logs sit beside the aggregates (both Redis streams, capped at ``log_max_length`` entries
per stream with ``XADD MAXLEN ~``; 0 turns both off). Each experiment shard's log gets every
exposure and every credited event from the same Lua script that updates the aggregates, so up to
the cap the log and the counts cannot disagree. The activity log, sharded by visitor, gets every
tracked event whether or not any experiment credits it: the history a visitor had before being
exposed, which CUPED uses as its covariate. It is written in the same round trip as the
experiment scripts but is not part of their atomic write (it lives in other cluster slots); it
is best-effort and never feeds the aggregates. Entries are packed (see :mod:`.codec`); reads
page through the streams with ``XRANGE`` and decode each page into columns, so an export never
holds more than a page.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import cast

from experiments.connection import guarded
from experiments.definitions import Experiment
from experiments.keys import place_of
from experiments.store import codec
from experiments.store._base import StoreBase
from experiments.store.readouts import fold

__all__ = ["ARRIVAL_SLACK_MS", "LogPage", "LogSnapshot", "LogsMixin"]

ARRIVAL_SLACK_MS = 3_600_000
"""How far an event's time may lie after its arrival in the log (clients' clocks run ahead)."""


@dataclass(frozen=True, slots=True)
class LogPage:
    """Raw log entries as columns, in log order.

    ``kinds`` holds ``"exposure"``, ``"event"`` (credited) or ``"pre_exposure"`` (an event of
    an exposed visitor from before the exposure, read from the activity log). ``values`` are
    the exact texts the service recorded. ``last_id`` is the stream id to resume after (None
    when the stream had nothing more) and ``scanned`` the entries read to build the page.
    """

    last_id: str | None
    scanned: int
    kinds: list[str] = field(default_factory=list)
    visitors: list[str] = field(default_factory=list)
    variants: list[str] = field(default_factory=list)
    timestamps_ms: list[int] = field(default_factory=list)
    events: list[str | None] = field(default_factory=list)
    values: list[str | None] = field(default_factory=list)
    attributes: list[str | None] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.kinds)

    def rows(self) -> Iterator[tuple[str, str, str, int, str | None, str | None, str | None]]:
        """``(kind, visitor, variant, timestamp_ms, event, value, attributes)`` per entry."""
        return zip(
            self.kinds,
            self.visitors,
            self.variants,
            self.timestamps_ms,
            self.events,
            self.values,
            self.attributes,
            strict=True,
        )

    def append(
        self,
        kind: str,
        visitor: str,
        variant: str,
        timestamp_ms: int,
        event: str | None,
        value: str | None,
        attributes: str | None,
    ) -> None:
        self.kinds.append(kind)
        self.visitors.append(visitor)
        self.variants.append(variant)
        self.timestamps_ms.append(timestamp_ms)
        self.events.append(event)
        self.values.append(value)
        self.attributes.append(attributes)


@dataclass(frozen=True, slots=True)
class LogSnapshot:
    """Where each stream ends when an export starts, and what the aggregates counted by then.

    ``log_tails[s]`` is the last id of experiment shard ``s`` (None: empty), ``activity_tails``
    the same for the activity shards; ``exposures`` is the number of exposures the aggregates
    held just before the tails were read, and ``log_entries`` the experiment log's length.
    An export that reads up to these ids is a fixed set of rows however long it takes.
    """

    log_tails: list[str | None]
    activity_tails: list[str | None]
    exposures: int
    log_entries: int


StreamEntries = list[tuple[str, dict[str, str]]]


class LogsMixin(StoreBase):
    async def _xrange(self, key: str, start: str, end: str, count: int) -> StreamEntries:
        return cast(StreamEntries, await self.client.xrange(key, min=start, max=end, count=count))

    @guarded
    async def log_snapshot(self, experiment: Experiment) -> LogSnapshot:
        """The last id of every log shard an export of ``experiment`` reads, and the counts.

        The aggregates are read before the tails, so every exposure they count is at or
        before a tail: an export with fewer exposure rows than ``exposures`` lost some to the
        log's cap.
        """
        shards = self._shards(experiment)
        pipe = self.client.pipeline(transaction=False)
        for k in shards:
            pipe.hgetall(k.agg)
        for k in shards:
            pipe.xrevrange(k.log, count=1)
            pipe.xlen(k.log)
        for a in range(self.activity_shards):
            pipe.xrevrange(self.keys.activity(a, self.activity_shards).log, count=1)
        raw = await pipe.execute()
        n = len(shards)
        exposures = sum(t.n for t in fold(raw[:n], len(experiment.variants)))
        tails = raw[n : 3 * n : 2]
        lengths = raw[n + 1 : 3 * n : 2]
        return LogSnapshot(
            log_tails=[t[0][0] if t else None for t in tails],
            activity_tails=[t[0][0] if t else None for t in raw[3 * n :]],
            exposures=exposures,
            log_entries=sum(int(x) for x in lengths),
        )

    @guarded
    async def log_page(
        self, experiment: Experiment, shard: int, *, after: str | None, until: str, count: int
    ) -> LogPage:
        """Up to ``count`` entries of one experiment shard's log after ``after``, to ``until``."""
        start = "-" if after is None else f"({after}"
        entries = await self._xrange(self._shard_keys(experiment, shard).log, start, until, count)
        page = LogPage(last_id=entries[-1][0] if entries else None, scanned=len(entries))
        keys = experiment.variant_keys
        for _, fields in entries:
            entry = codec.decode_log(fields["d"])
            page.append(
                entry.kind,
                entry.visitor_id,
                keys[entry.variant_index],
                entry.timestamp_ms,
                entry.event,
                entry.value,
                entry.attributes,
            )
        return page

    @guarded
    async def activity_entries(
        self, shard: int, *, after: str | None = None, count: int = 1000
    ) -> list[tuple[str, tuple[str, int, str, str]]]:
        """Up to ``count`` decoded entries of activity shard ``shard`` after ``after``:
        ``(stream id, (visitor_id, timestamp_ms, event, value))``."""
        start = "-" if after is None else f"({after}"
        log = self.keys.activity(shard, self.activity_shards).log
        entries = await self._xrange(log, start, "+", count)
        return [(id_, codec.decode_activity(f["a"])) for id_, f in entries]

    @guarded
    async def pre_exposure_page(
        self,
        experiment: Experiment,
        shard: int,
        *,
        after: str | None,
        until: str,
        count: int,
        lookback_ms: int | None = None,
    ) -> LogPage:
        """Events of ``experiment``'s visitors from before their exposure, from the activity log.

        Reads up to ``count`` entries of activity shard ``shard`` after id ``after``, keeps the
        events some metric of the experiment reads, looks their visitors' exposures up (one
        pipelined ``HMGET`` per assignment slice) and returns those that happened strictly
        before the visitor's exposure (and, with ``lookback_ms``, at most that long before),
        with the visitor's variant. With ``lookback_ms`` the first page skips the entries that
        arrived too early to qualify: those older than the experiment's start minus the
        lookback (and :data:`ARRIVAL_SLACK_MS` for clocks running ahead).
        """
        start = "-" if after is None else f"({after}"
        if after is None and lookback_ms is not None:
            began_s = experiment.started_at or experiment.created_at or 0.0
            start = str(max(0, int(began_s * 1000) - lookback_ms - ARRIVAL_SLACK_MS))
        entries = await self._xrange(
            self.keys.activity(shard, self.activity_shards).log, start, until, count
        )
        page = LogPage(last_id=entries[-1][0] if entries else None, scanned=len(entries))
        wanted = experiment.events()
        rows = [codec.decode_activity(f["a"]) for _, f in entries]
        rows = [row for row in rows if row[2] in wanted]
        by_slice: dict[tuple[int, int], list[str]] = {}
        for visitor in dict.fromkeys(row[0] for row in rows):
            place = place_of(visitor, experiment.shards, experiment.slices)
            by_slice.setdefault((place.shard, place.slice), []).append(visitor)
        if not by_slice:
            return page
        pipe = self.client.pipeline(transaction=False)
        for (s, slice_), visitors in by_slice.items():
            k = self._shard_keys(experiment, s)
            pipe.hmget(k.assign(slice_), [codec.pack_visitor(v) for v in visitors])
        exposed: dict[str, tuple[str, int]] = {}
        keys = experiment.variant_keys
        for visitors, found in zip(by_slice.values(), await pipe.execute(), strict=True):
            for visitor, raw in zip(visitors, found, strict=True):
                if raw is None:
                    continue
                index, ms = codec.assignment_of(raw)
                if index < len(keys):
                    exposed[visitor] = (keys[index], ms)
        for visitor, ts, event, value in rows:
            hit = exposed.get(visitor)
            if hit is None or ts >= hit[1]:
                continue
            if lookback_ms is not None and ts < hit[1] - lookback_ms:
                continue
            page.append("pre_exposure", visitor, hit[0], ts, event, value, None)
        return page
