"""A small Python client of the Abacus HTTP API for notebooks and scripts.

``Client(url, api_key)`` reads what a data scientist needs as pandas objects: the raw event log
(:meth:`Client.events`), the stored sufficient statistics (:meth:`Client.summary`), the
statistical read-out as one typed value (:meth:`Client.results`) or a tidy DataFrame
(:meth:`Client.results_frame`), the raw log as a DuckDB database to query with SQL
(:meth:`Client.duckdb`), and definitions. It speaks HTTP only (httpx), so it needs neither
FastAPI nor Redis: a notebook on another machine can use it.

>>> from service.client import Client                                    # doctest: +SKIP
>>> with Client("http://127.0.0.1:8000", api_key="...") as client:       # doctest: +SKIP
...     events = client.events("buyakilt-filters")
"""

from __future__ import annotations

import tempfile
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import IO, TYPE_CHECKING, Any, Literal, Self
from urllib.parse import quote

import httpx

from service.readout.model import ExperimentResults
from stats.errors import IncompleteLogWarning

if TYPE_CHECKING:
    import duckdb
    import pandas as pd

__all__ = [
    "BREAKDOWN_FRAME_COLUMNS",
    "Client",
    "ClientError",
    "Download",
    "IncompleteLogWarning",
    "breakdown_frame",
]

EventsFormat = Literal["parquet", "csv", "json"]
SummaryFormat = Literal["json", "csv"]

# Downloads are kept in memory up to this size, then spill to a temporary file.
SPOOL_BYTES = 64 * 1024 * 1024
CHUNK_BYTES = 1024 * 1024


class ClientError(Exception):
    """The service answered with an error (``status`` and its JSON ``error``/``message``)."""

    def __init__(self, status: int, error: str, message: str) -> None:
        super().__init__(f"{status} {error}: {message}")
        self.status = status
        self.error = error
        self.message = message


@dataclass(frozen=True)
class Download:
    """What :meth:`Client.download_events` wrote."""

    path: Path | None
    """The file written, when ``out`` was a path."""
    bytes: int
    exposures: int
    """Exposures the service's aggregates counted when the export started."""
    log_entries: int
    """Entries in the experiment's log when the export started (pre-exposure rows come extra)."""


class Client:
    """The Abacus HTTP API as Python calls.

    Parameters
    ----------
    url : str, default "http://127.0.0.1:8000"
        Where the service listens.
    api_key : str, optional
        The service's ``ABACUS_ADMIN_KEY`` (sent as a bearer token); not needed when the
        service runs without one, on loopback.
    timeout : float, default 60
        Seconds to wait for a response to start or for the next chunk of it.
    transport : httpx.BaseTransport, optional
        For tests: a transport to use instead of the network.
    """

    def __init__(
        self,
        url: str = "http://127.0.0.1:8000",
        api_key: str | None = None,
        *,
        timeout: float = 60.0,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.url = url.rstrip("/")
        self._http = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout, transport=transport
        )

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        trace: TracebackType | None,
    ) -> None:
        self.close()

    # -- JSON endpoints ----------------------------------------------------------------------

    def _get(self, path: str, **params: Any) -> httpx.Response:
        try:
            response = self._http.get(path, params=params or None)
        except httpx.HTTPError as exc:
            raise ClientError(0, "unreachable", f"cannot reach {self.url}: {exc}") from exc
        _raise_for_error(response)
        return response

    def experiments(self) -> list[dict[str, Any]]:
        """Every experiment's definition."""
        body: list[dict[str, Any]] = self._get("/v1/experiments").json()
        return body

    def experiment(self, key: str) -> dict[str, Any]:
        """One experiment's definition (variants, metrics, status, dates)."""
        body: dict[str, Any] = self._get(_path(key)).json()
        return body

    def results(self, key: str, *, dimension: str | None = None) -> ExperimentResults:
        """The statistical read-out, as the report shows it (``GET .../results``), typed.

        Attributes, not keys: ``results.primary.treatments[0].relative_lift``, each row's
        ``verdict``, ``results.srm.mismatch``. A field the service renamed or dropped raises
        :class:`pydantic.ValidationError` here rather than reading as missing. With
        ``dimension`` the read-out carries its ``breakdown`` by that dimension.
        """
        params = {} if dimension is None else {"dimension": dimension}
        response = self._get(_path(key, "results"), **params)
        return ExperimentResults.model_validate_json(response.content)

    def breakdown(self, key: str, dimension: str) -> pd.DataFrame:
        """The comparison per value of ``dimension`` as a tidy DataFrame (see
        :func:`breakdown_frame`); ``stats.breakdown`` computes the same from the events export.
        """
        return breakdown_frame(self.results(key, dimension=dimension))

    def results_frame(self, key: str) -> pd.DataFrame:
        """The read-out as a tidy DataFrame: one row per metric and variant.

        The columns are :data:`service.readout.frames.RESULT_COLUMNS` (intervals as ``_low``
        and ``_high``; the control's comparison NaN), read from :meth:`results`.
        """
        from service.readout.frames import results_frame

        return results_frame(self.results(key))

    def duckdb(
        self,
        key: str,
        *,
        database: str | Path = ":memory:",
        pre_exposure: bool = True,
        lookback_days: int = 30,
        on_progress: Callable[[int], None] | None = None,
    ) -> duckdb.DuckDBPyConnection:
        """The raw log of ``key`` in DuckDB, with the views ``exposures``, ``events``,
        ``visitors`` and ``pre_exposure_events`` (see :mod:`service.sql`).

        The log is downloaded as Parquet (a snapshot as of the request) into a temporary file
        and loaded into ``database`` (in memory by default; a path writes a file that stays).
        Warns :class:`IncompleteLogWarning` when the log holds fewer exposures than the
        aggregates counted. Join it with your own tables: ``con.register("orders", frame)``.
        """
        from experiments.definitions import Experiment
        from service.sql import load_log

        experiment = Experiment.model_validate(self.experiment(key))
        with tempfile.TemporaryDirectory() as scratch:
            parquet = Path(scratch) / "events.parquet"
            download = self.download_events(
                key,
                parquet,
                format="parquet",
                pre_exposure=pre_exposure,
                lookback_days=lookback_days,
                on_progress=on_progress,
            )
            connection = load_log(parquet, experiment.metrics, database=database)
        row = connection.execute("SELECT count(*) FROM exposures").fetchone()
        _warn_if_trimmed(key, 0 if row is None else int(row[0]), download.exposures)
        return connection

    def summary(self, key: str, *, daily: bool = False) -> pd.DataFrame:
        """Per-variant, per-metric sufficient statistics as a DataFrame.

        One row per variant and metric (per UTC day too with ``daily=True``: that day's
        increments, so a cumulative sum over days gives the statistics as of each day), with
        ``n``, ``sum``, ``sum_squares`` and for ratios the numerator, denominator and cross
        sums. ``stats.summarise_aggregates(frame, metric_column="metric")`` reads it.
        """
        import pandas as pd

        body = self._get(_path(key, "summary"), format="json", daily=str(daily).lower()).json()
        frame = pd.DataFrame(body["rows"], columns=body["columns"])
        if daily:
            frame["day"] = pd.to_datetime(frame["day"]).dt.date
        return frame

    # -- the raw log -------------------------------------------------------------------------

    @contextmanager
    def _stream_events(self, key: str, params: dict[str, str]) -> Iterator[httpx.Response]:
        try:
            with self._http.stream("GET", _path(key, "events"), params=params) as response:
                if response.status_code >= 400:
                    response.read()
                    _raise_for_error(response)
                yield response
        except httpx.HTTPError as exc:
            raise ClientError(0, "transfer_failed", f"events export of {key!r}: {exc}") from exc

    def download_events(
        self,
        key: str,
        out: str | Path | IO[bytes],
        *,
        format: EventsFormat = "parquet",
        pre_exposure: bool = True,
        lookback_days: int = 30,
        row_group_size: int | None = None,
        on_progress: Callable[[int], None] | None = None,
    ) -> Download:
        """Stream the raw event log of ``key`` into ``out`` (a path or a binary file).

        ``on_progress`` is called with the number of bytes of every chunk received. The
        export is a snapshot of the log as it was when the request arrived. See
        :meth:`events` for ``pre_exposure`` and ``lookback_days``; ``row_group_size`` sets
        the rows per Parquet row group (the service's default when None).
        """
        params = {
            "format": format,
            "pre_exposure": str(pre_exposure).lower(),
            "lookback_days": str(lookback_days),
        }
        if row_group_size is not None:
            params["row_group_size"] = str(row_group_size)
        with self._stream_events(key, params) as response:
            exposures = int(response.headers.get("x-abacus-exposures", 0))
            entries = int(response.headers.get("x-abacus-log-entries", 0))
            written = 0
            with _open(out) as sink:
                for chunk in response.iter_bytes(CHUNK_BYTES):
                    sink.write(chunk)
                    written += len(chunk)
                    if on_progress is not None:
                        on_progress(len(chunk))
        path = Path(out) if isinstance(out, str | Path) else None
        return Download(path, written, exposures, entries)

    def events(
        self,
        key: str,
        *,
        pre_exposure: bool = True,
        lookback_days: int = 30,
        attribute_columns: bool = False,
    ) -> pd.DataFrame:
        """The raw event log of ``key`` as a DataFrame (fetched as Parquet).

        One row per exposure (``type == "exposure"``, with the ``attributes`` JSON given at
        assignment), per credited event (``"event"``: ``event`` and ``value``) and, unless
        ``pre_exposure=False``, per event of an exposed visitor from at most ``lookback_days``
        before the exposure (``"pre_exposure"``, the CUPED covariate's source). Columns:
        ``experiment``, ``type``, ``visitor_id``, ``variant``, ``timestamp`` (UTC), ``event``,
        ``value``, ``attributes``. Rows are ordered by ``timestamp``. With
        ``attribute_columns=True`` the ``attributes`` JSON is replaced by one column per
        attribute (:func:`stats.expand_attributes`; NA on rows without it).

        Warns :class:`IncompleteLogWarning` when the log holds fewer exposures than the
        aggregates counted (it was trimmed by ``ABACUS_LOG_MAX_LENGTH``).
        """
        import pyarrow.parquet as pq

        with tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES) as spool:
            download = self.download_events(
                key,
                spool,
                format="parquet",
                pre_exposure=pre_exposure,
                lookback_days=lookback_days,
            )
            spool.seek(0)
            frame = pq.read_table(spool).to_pandas()
        frame = frame.sort_values("timestamp", kind="stable").reset_index(drop=True)
        _warn_if_trimmed(key, int((frame["type"] == "exposure").sum()), download.exposures)
        if attribute_columns:
            from stats.errors import InvalidInputError
            from stats.frames import expand_attributes

            try:
                frame = expand_attributes(frame)
            except InvalidInputError:  # a key named like a column of the export
                frame = expand_attributes(frame, prefix="attribute_")
        return frame


BREAKDOWN_FRAME_COLUMNS = (
    "dimension",
    "slice",
    "slice_visitors",
    "srm_pvalue",
    "metric",
    "kind",
    "direction",
    "variant",
    "visitors",
    "value",
    "absolute_lift",
    "relative_lift",
    "relative_ci_low",
    "relative_ci_high",
    "pvalue",
    "pvalue_adjusted",
    "significant",
    "verdict",
)
"""Columns of :func:`breakdown_frame`; those it shares with ``stats.BREAKDOWN_COLUMNS`` mean
the same."""


_NOT_FLOAT = frozenset(
    {"dimension", "slice", "slice_visitors", "metric", "kind", "direction", "variant"}
    | {"visitors", "significant", "verdict"}
)


def breakdown_frame(results: ExperimentResults) -> pd.DataFrame:
    """One row per slice, metric and variant (control first, its comparison empty).

    ``pvalue_adjusted`` is Holm-adjusted across the slices of each metric; ``verdict`` is the
    row's verdict kind (``winning``, ``losing``, ...). Raises ``ValueError`` when the read-out
    has no breakdown (ask :meth:`Client.results` with ``dimension``).
    """
    import pandas as pd

    breakdown = results.breakdown
    if breakdown is None:
        raise ValueError("results has no breakdown: ask for it with dimension=NAME")
    rows = []
    for part in breakdown.slices:
        for metric in part.metrics:
            for row in metric.variants:
                ci = row.relative_ci
                rows.append(
                    (
                        breakdown.dimension,
                        part.value,
                        part.visitors,
                        part.srm.pvalue,
                        metric.name,
                        metric.kind,
                        metric.direction,
                        row.variant,
                        row.visitors,
                        row.value,
                        row.absolute_lift,
                        row.relative_lift,
                        None if ci is None else ci[0],
                        None if ci is None else ci[1],
                        row.pvalue,
                        row.adjusted_pvalue,
                        None if row.verdict is None else row.significant,
                        None if row.verdict is None else row.verdict.kind.value,
                    )
                )
    frame = pd.DataFrame(rows, columns=list(BREAKDOWN_FRAME_COLUMNS))
    for column in BREAKDOWN_FRAME_COLUMNS:
        if column not in _NOT_FLOAT:
            frame[column] = frame[column].astype("float64")
    frame["significant"] = frame["significant"].astype("boolean")
    return frame


def _warn_if_trimmed(key: str, exposed: int, counted: int) -> None:
    if exposed < counted:
        warnings.warn(
            f"the log of {key!r} holds {exposed:,} exposures but the aggregates counted "
            f"{counted:,}: its oldest entries were trimmed by the cap (ABACUS_LOG_MAX_LENGTH), "
            "so numbers recomputed from it will not match the read-out",
            IncompleteLogWarning,
            stacklevel=3,
        )


@contextmanager
def _open(out: str | Path | IO[bytes]) -> Iterator[IO[bytes]]:
    if isinstance(out, str | Path):
        with open(out, "wb") as handle:
            yield handle
    else:
        yield out


def _path(key: str, *rest: str) -> str:
    return "/".join(["/v1/experiments", quote(key, safe=""), *rest])


def _raise_for_error(response: httpx.Response) -> None:
    if response.status_code < 400:
        return
    try:
        body = response.json()
        error, message = str(body.get("error", "error")), str(body.get("message", body))
    except ValueError:
        error, message = "error", response.text[:500]
    raise ClientError(response.status_code, error, message)
