"""Export for notebooks and warehouses: an experiment's raw log and its sufficient statistics.

``GET /v1/experiments/KEY/events`` streams the raw log as Parquet, CSV or JSON Lines, one row per
exposure, credited event and (optionally) pre-exposure event, in the columns of
:data:`EVENT_COLUMNS`. It reads the streams shard by shard with ``XRANGE`` in pages of
:data:`PAGE_SIZE` entries up to the ids they ended at when the request arrived (a fixed
snapshot however long the download takes), and encodes each page in a worker thread; Parquet
row groups are flushed to the response as they fill. Memory is bounded by one page plus one row
group, whatever the size of the log, and a slow client slows the reads down rather than piling
rows up. Rows come shard by shard, each shard in log order: sort by ``timestamp`` if order
matters.

Pre-exposure rows come from the visitor-sharded activity log: every tracked event of every
visitor. The export scans the part of it that arrived since the experiment's start minus the
lookback window, keeps the events the experiment's metrics read, and looks their visitors'
exposures up in pages; so it costs time in proportion to the site's whole tracked traffic over
that period, not only the experiment's.

``GET /v1/experiments/KEY/summary`` returns the stored per-variant, per-metric sufficient
statistics (``n``, ``sum``, ``sum_squares``; numerator, denominator and cross sums for ratios),
overall or per UTC day, as JSON or CSV; ``stats.summarise_aggregates`` reads it directly.
"""

from __future__ import annotations

import asyncio
import csv
import functools
import io
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta
from functools import lru_cache
from typing import Annotated, Any, Literal, Protocol
from urllib.parse import quote

import orjson
from fastapi import APIRouter, Query, Response
from fastapi.responses import StreamingResponse

import stats
from experiments.definitions import Experiment, Metric, MetricKind
from experiments.store import LogPage, LogSnapshot, Store, VariantTotals
from service.api.deps import Admin, StoreDep

__all__ = [
    "EVENT_COLUMNS",
    "PAGE_SIZE",
    "SUMMARY_COLUMNS",
    "router",
    "summary_rows",
]

router = APIRouter(prefix="/v1/experiments", tags=["export"], dependencies=[Admin])

PAGE_SIZE = 5_000
"""Stream entries read per ``XRANGE`` call."""

DEFAULT_ROW_GROUP_SIZE = 65_536
DEFAULT_LOOKBACK_DAYS = 30
DAY_MS = 86_400_000
EVENT_COLUMNS = (
    "experiment",
    "type",
    "visitor_id",
    "variant",
    "timestamp",
    "event",
    "value",
    "attributes",
)
"""Columns of the events export, in order."""

SUMMARY_COLUMNS = ("experiment", "day", "variant", "metric", "kind", *stats.AGGREGATE_COLUMNS)
"""Columns of the summary export (``day`` only with ``daily=true``); the statistics' columns
are the ones ``stats.summarise_aggregates`` reads."""

EventsFormat = Literal["parquet", "csv", "json"]
SummaryFormat = Literal["json", "csv"]

MEDIA_TYPES = {
    "parquet": "application/vnd.apache.parquet",
    "csv": "text/csv; charset=utf-8",
    "json": "application/x-ndjson",
}
SUFFIXES = {"parquet": "parquet", "csv": "csv", "json": "jsonl"}


def _iso(ms: int) -> str:
    """``2024-05-01T12:00:00.123Z``: UTC with milliseconds, as in the Parquet timestamp."""
    days, rest = divmod(ms, 86_400_000)
    hours, rest = divmod(rest, 3_600_000)
    minutes, rest = divmod(rest, 60_000)
    seconds, millis = divmod(rest, 1000)
    return f"{_iso_day(days)}T{hours:02d}:{minutes:02d}:{seconds:02d}.{millis:03d}Z"


@lru_cache(maxsize=1024)
def _iso_day(epoch_day: int) -> str:
    return (date(1970, 1, 1) + timedelta(days=epoch_day)).isoformat()


def _arrow_schema() -> Any:
    import pyarrow as pa

    return pa.schema(
        [
            ("experiment", pa.string()),
            ("type", pa.string()),
            ("visitor_id", pa.string()),
            ("variant", pa.string()),
            ("timestamp", pa.timestamp("ms", tz="UTC")),
            ("event", pa.string()),
            ("value", pa.float64()),
            ("attributes", pa.string()),
        ]
    )


def _arrow_batch(experiment: str, page: LogPage) -> Any:
    """One page as an Arrow record batch in the export's schema."""
    import pyarrow as pa

    return pa.record_batch(
        [
            pa.array([experiment] * len(page), pa.string()),
            pa.array(page.kinds, pa.string()),
            pa.array(page.visitors, pa.string()),
            pa.array(page.variants, pa.string()),
            pa.array(page.timestamps_ms, pa.int64()).cast(pa.timestamp("ms", tz="UTC")),
            pa.array(page.events, pa.string()),
            pa.array([None if v is None else float(v) for v in page.values], pa.float64()),
            pa.array(page.attributes, pa.string()),
        ],
        schema=_arrow_schema(),
    )


class _Encoder(Protocol):
    def encode(self, page: LogPage) -> bytes: ...

    def finish(self) -> bytes: ...


_FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def _cell(text: str) -> str:
    """A text cell a spreadsheet shows as text: one starting like a formula gets a leading '."""
    return "'" + text if text.startswith(_FORMULA_STARTS) else text


class _CsvEncoder:
    """RFC 4180 CSV with a header row; empty cells for missing values, values as recorded."""

    def __init__(self, experiment: str) -> None:
        self.experiment = experiment
        self.header = True

    def encode(self, page: LogPage) -> bytes:
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        if self.header:
            writer.writerow(EVENT_COLUMNS)
            self.header = False
        key = self.experiment
        writer.writerows(
            (
                key,
                kind,
                _cell(visitor),
                variant,
                _iso(ms),
                event or "",
                value or "",
                _cell(attributes or ""),
            )
            for kind, visitor, variant, ms, event, value, attributes in page.rows()
        )
        return out.getvalue().encode()

    def finish(self) -> bytes:
        return ",".join(EVENT_COLUMNS).encode() + b"\n" if self.header else b""


class _JsonLinesEncoder:
    """One JSON object per line; ``value`` a number, ``attributes`` an object, missing: null."""

    def __init__(self, experiment: str) -> None:
        self.experiment = experiment

    def encode(self, page: LogPage) -> bytes:
        key = self.experiment
        return b"".join(
            orjson.dumps(
                {
                    "experiment": key,
                    "type": kind,
                    "visitor_id": visitor,
                    "variant": variant,
                    "timestamp": _iso(ms),
                    "event": event,
                    "value": None if value is None else float(value),
                    "attributes": None if attributes is None else orjson.Fragment(attributes),
                },
                option=orjson.OPT_APPEND_NEWLINE,
            )
            for kind, visitor, variant, ms, event, value, attributes in page.rows()
        )

    def finish(self) -> bytes:
        return b""


class _Sink:
    """A write-only file for pyarrow that hands its bytes over as they are written."""

    def __init__(self) -> None:
        self.chunks: list[bytes] = []
        self.position = 0
        self.closed = False

    def write(self, data: Any) -> int:
        chunk = bytes(data)
        self.chunks.append(chunk)
        self.position += len(chunk)
        return len(chunk)

    def tell(self) -> int:
        return self.position

    def flush(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def writable(self) -> bool:
        return True

    def drain(self) -> bytes:
        out = b"".join(self.chunks)
        self.chunks = []
        return out


class _ParquetEncoder:
    """Parquet (snappy) written row group by row group as pages arrive."""

    def __init__(self, experiment: str, row_group_size: int) -> None:
        import pyarrow as pa
        import pyarrow.parquet as pq

        self.pa = pa
        self.experiment = experiment
        self.row_group_size = row_group_size
        self.sink = _Sink()
        self.writer = pq.ParquetWriter(self.sink, _arrow_schema(), compression="snappy")
        self.pending: list[Any] = []
        self.pending_rows = 0

    def encode(self, page: LogPage) -> bytes:
        batch = _arrow_batch(self.experiment, page)
        self.pending.append(batch)
        self.pending_rows += len(page)
        if self.pending_rows >= self.row_group_size:
            self._flush()
        return self.sink.drain()

    def _flush(self) -> None:
        if self.pending:
            table = self.pa.Table.from_batches(self.pending, schema=_arrow_schema())
            self.writer.write_table(table, row_group_size=self.row_group_size)
            self.pending = []
            self.pending_rows = 0

    def finish(self) -> bytes:
        self._flush()
        self.writer.close()
        return self.sink.drain()


async def _pages(
    store: Store,
    experiment: Experiment,
    snapshot: LogSnapshot,
    lookback_days: int | None,
) -> AsyncIterator[LogPage]:
    """Every page of the experiment's log, then of the pre-exposure events, up to the tails."""
    readers: list[tuple[Callable[..., Any], int, str | None]] = [
        (store.log_page, shard, tail) for shard, tail in enumerate(snapshot.log_tails)
    ]
    if lookback_days is not None and experiment.events():
        before = functools.partial(store.pre_exposure_page, lookback_ms=lookback_days * DAY_MS)
        readers += [(before, shard, tail) for shard, tail in enumerate(snapshot.activity_tails)]
    for read, shard, tail in readers:
        after: str | None = None
        while tail is not None:
            page: LogPage = await read(experiment, shard, after=after, until=tail, count=PAGE_SIZE)
            if len(page):
                yield page
            if page.last_id is None or page.last_id == tail or page.scanned < PAGE_SIZE:
                break
            after = page.last_id


async def _stream(
    store: Store,
    experiment: Experiment,
    snapshot: LogSnapshot,
    encoder: _Encoder,
    lookback_days: int | None,
) -> AsyncIterator[bytes]:
    """Encoded chunks, one per page, encoded in a worker thread of this export's own.

    One thread for the whole export rather than whichever threads of the shared pool are free:
    the encoder and its Parquet writer stay on one thread, and what they allocate comes from
    one malloc arena instead of growing several.
    """
    loop = asyncio.get_running_loop()
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="export") as thread:
        async for page in _pages(store, experiment, snapshot, lookback_days):
            chunk = await loop.run_in_executor(thread, encoder.encode, page)
            if chunk:
                yield chunk
        tail = await loop.run_in_executor(thread, encoder.finish)
        if tail:
            yield tail


@router.get(
    "/{key}/events",
    summary="Stream the raw event log as Parquet, CSV or JSON Lines",
    response_class=StreamingResponse,
    responses={
        200: {
            "description": "one row per exposure, credited event and pre-exposure event, "
            f"columns {', '.join(EVENT_COLUMNS)}",
            "content": {media: {} for media in MEDIA_TYPES.values()},
        },
    },
)
async def events(
    key: str,
    store: StoreDep,
    format_: Annotated[
        EventsFormat,
        Query(alias="format", description="parquet, csv, or json (JSON Lines: one per line)"),
    ] = "parquet",
    pre_exposure: Annotated[
        bool,
        Query(
            description="add the experiment's visitors' events from before their exposure "
            "(from the activity log), for CUPED"
        ),
    ] = True,
    lookback_days: Annotated[
        int,
        Query(
            ge=1,
            le=3650,
            description="pre-exposure events at most this many days before each exposure",
        ),
    ] = DEFAULT_LOOKBACK_DAYS,
    row_group_size: Annotated[
        int, Query(ge=1_000, le=1_048_576, description="rows per Parquet row group")
    ] = DEFAULT_ROW_GROUP_SIZE,
) -> StreamingResponse:
    experiment = await store.get_experiment(key)
    snapshot = await store.log_snapshot(experiment)
    encoder: _Encoder
    if format_ == "parquet":
        encoder = _ParquetEncoder(experiment.key, row_group_size)
    elif format_ == "csv":
        encoder = _CsvEncoder(experiment.key)
    else:
        encoder = _JsonLinesEncoder(experiment.key)
    filename = f"{experiment.key}-events.{SUFFIXES[format_]}"
    return StreamingResponse(
        _stream(store, experiment, snapshot, encoder, lookback_days if pre_exposure else None),
        media_type=MEDIA_TYPES[format_],
        headers={
            "Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}",
            # Exposures the aggregates counted: an export with fewer exposure rows lost some
            # to the log's cap (ABACUS_LOG_MAX_LENGTH).
            "X-Abacus-Exposures": str(snapshot.exposures),
            "X-Abacus-Log-Entries": str(snapshot.log_entries),
            "X-Abacus-Log-Max-Length": str(store.log_max_length),
        },
    )


def _number(value: float) -> float | int:
    return int(value) if value.is_integer() and abs(value) < 2**53 else value


def _statistics(metric: Metric, t: VariantTotals) -> tuple[tuple[str, ...], list[float | int]]:
    """The aggregate columns of ``metric``'s kind and their values in ``t``."""
    if metric.kind is MetricKind.RATIO:
        num, den = metric.numerator or "", metric.denominator or ""
        values = [
            t.sums.get(num, 0.0),
            t.sum_squares.get(num, 0.0),
            t.sums.get(den, 0.0),
            t.sum_squares.get(den, 0.0),
            t.cross.get(metric.name, 0.0),
        ]
        return stats.RATIO_COLUMNS, [_number(v) for v in values]
    values = [t.sums.get(metric.name, 0.0), t.sum_squares.get(metric.name, 0.0)]
    return stats.MEAN_COLUMNS, [_number(v) for v in values]


def summary_rows(
    experiment: Experiment, totals: list[VariantTotals], day: str | None = None
) -> list[dict[str, Any]]:
    """One row per variant and metric: the stored sufficient statistics of ``totals``."""
    rows: list[dict[str, Any]] = []
    iso_day = None if day is None else f"{day[:4]}-{day[4:6]}-{day[6:]}"
    for variant, t in zip(experiment.variants, totals, strict=True):
        for metric in experiment.metrics:
            row: dict[str, Any] = dict.fromkeys(SUMMARY_COLUMNS)
            row.update(
                experiment=experiment.key,
                day=iso_day,
                variant=variant.key,
                metric=metric.name,
                kind=metric.kind.value,
                n=t.n,
            )
            row.update(zip(*_statistics(metric, t), strict=True))
            rows.append(row)
    return rows


def _csv(rows: list[dict[str, Any]], columns: tuple[str, ...]) -> bytes:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    writer.writerows(
        [
            "" if row[c] is None else _cell(row[c]) if isinstance(row[c], str) else row[c]
            for c in columns
        ]
        for row in rows
    )
    return out.getvalue().encode()


@router.get(
    "/{key}/summary",
    summary="Per-variant, per-metric sufficient statistics (overall or per day)",
    responses={
        200: {
            "description": f"columns {', '.join(SUMMARY_COLUMNS)}",
            "content": {"application/json": {}, "text/csv": {}},
        },
    },
)
async def summary(
    key: str,
    store: StoreDep,
    format_: Annotated[SummaryFormat, Query(alias="format", description="json or csv")] = "json",
    daily: Annotated[
        bool, Query(description="one set of rows per UTC day: that day's increments")
    ] = False,
) -> Response:
    experiment = await store.get_experiment(key)
    columns = SUMMARY_COLUMNS if daily else tuple(c for c in SUMMARY_COLUMNS if c != "day")
    if daily:
        rows = [
            row
            for day, totals in await store.daily_totals(experiment)
            for row in summary_rows(experiment, totals, day)
        ]
    else:
        rows = summary_rows(experiment, await store.totals(experiment))
    rows = [{c: row[c] for c in columns} for row in rows]
    if format_ == "csv":
        filename = f"{experiment.key}-summary{'-daily' if daily else ''}.csv"
        return Response(
            _csv(rows, columns),
            media_type=MEDIA_TYPES["csv"],
            headers={"Content-Disposition": f"attachment; filename*=UTF-8''{quote(filename)}"},
        )
    body = {
        "experiment": experiment.key,
        "daily": daily,
        "variants": experiment.variant_keys,
        "metrics": [m.model_dump(mode="json", exclude_none=True) for m in experiment.metrics],
        "columns": list(columns),
        "rows": rows,
    }
    return Response(orjson.dumps(body), media_type="application/json")
