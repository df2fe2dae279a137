"""SQL over an experiment's raw log: a DuckDB database with three views a data scientist joins.

:func:`load_log` reads the events export (Parquet, as ``GET /v1/experiments/KEY/events``
streams it) into a table ``log`` and defines over it:

- ``exposures``: ``visitor_id``, ``variant``, ``ts``, then one column per visitor attribute
  given at assignment (``DOUBLE`` when every value of it is a number, ``BOOLEAN`` when every
  value is a boolean, else ``VARCHAR``; NULL where a visitor has none). An attribute named like
  one of the first three columns is called ``attribute_NAME``.
- ``events``: ``visitor_id``, ``variant``, ``event``, ``value``, ``ts``: the events credited to
  the experiment (after each visitor's exposure, at most once per event id).
- ``visitors``: one row per exposed visitor, its exposure columns (``ts`` renamed
  ``exposed_at``) and one column per non-ratio metric of the definition, computed as the store
  computes it: ``conversion`` 1 when the visitor has at least one of the metric's events, else
  0; ``mean`` the sum of their values; ``count`` how many there are. Ratio metrics read two of
  these columns (``sum(revenue) / sum(orders)``).
- ``pre_exposure_events``: the same columns as ``events`` for the visitors' activity before
  their exposure (the CUPED covariates' source), when the export included it.

So ``SELECT variant, count(*), sum(conversion) FROM visitors GROUP BY variant`` gives the
visitors and totals of the service's read-out, as long as the log holds every exposure (it is
capped by ``ABACUS_LOG_MAX_LENGTH``). ``abacus export KEY --format duckdb`` writes such a file;
``Client.duckdb`` returns such a connection.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from experiments.definitions import Metric, MetricKind

if TYPE_CHECKING:
    import duckdb

__all__ = ["EXPOSURE_COLUMNS", "VIEWS", "attribute_columns", "load_log"]

EXPOSURE_COLUMNS = ("visitor_id", "variant", "ts")
"""The fixed columns of the ``exposures`` view; attribute columns follow them."""
VIEWS = ("exposures", "events", "visitors", "pre_exposure_events")
"""The views :func:`load_log` defines."""

_NUMERIC = {"BIGINT", "UBIGINT", "DOUBLE"}


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def attribute_columns(connection: duckdb.DuckDBPyConnection) -> list[tuple[str, str, str]]:
    """Per attribute key in the exposures of ``log``: (key, column name, SQL type), by key."""
    keys = connection.execute(
        "SELECT DISTINCT unnest(json_keys(attributes)) AS k FROM log "
        "WHERE type = 'exposure' AND attributes IS NOT NULL AND attributes <> '' ORDER BY k"
    ).fetchall()
    out = []
    for (key,) in keys:
        path = _literal("$." + _identifier(key))
        kinds = {
            kind
            for (kind,) in connection.execute(
                f"SELECT DISTINCT json_type(attributes, {path}) FROM log "
                "WHERE type = 'exposure' AND attributes IS NOT NULL AND attributes <> ''"
            ).fetchall()
            if kind not in (None, "NULL")
        }
        sql_type = (
            "DOUBLE" if kinds <= _NUMERIC else "BOOLEAN" if kinds == {"BOOLEAN"} else "VARCHAR"
        )
        column = f"attribute_{key}" if key in EXPOSURE_COLUMNS else key
        out.append((key, column, sql_type))
    return out


def _metric_column(metric: Metric) -> str:
    event = _literal(metric.event or "")
    of_event = f"FILTER (WHERE e.event = {event})"
    name = _identifier(metric.name)
    if metric.kind is MetricKind.CONVERSION:
        return f"CAST(count(e.event) {of_event} > 0 AS INTEGER) AS {name}"
    if metric.kind is MetricKind.MEAN:
        total = f"coalesce(sum(coalesce(e.value, 0)) {of_event}, 0.0)"
    else:
        total = f"count(e.event) {of_event}"
    if metric.cap is not None:  # as the store caps it: each visitor's total at most the cap
        total = f"least({total}, {float(metric.cap)!r})"
    return f"{total} AS {name}"


def load_log(
    parquet: str | Path,
    metrics: Sequence[Metric],
    *,
    database: str | Path = ":memory:",
) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection holding the events export in ``parquet`` as table ``log`` and views.

    Parameters
    ----------
    parquet : str or Path
        An events export in Parquet (columns as ``EVENT_COLUMNS`` of the export router).
    metrics : sequence of Metric
        The experiment's metrics; each non-ratio one becomes a column of ``visitors``.
    database : str or Path, default ":memory:"
        Where the database lives; a file path writes a database any DuckDB client can open
        (an existing file is replaced).

    Returns
    -------
    duckdb.DuckDBPyConnection
        Open on the database; the caller closes it.
    """
    import duckdb

    if str(database) != ":memory:":
        Path(database).unlink(missing_ok=True)
    connection = duckdb.connect(str(database))
    try:
        connection.execute(
            f"CREATE TABLE log AS SELECT * FROM read_parquet({_literal(str(parquet))})"
        )
        attributes = [
            f"CAST(attributes ->> {_literal('$.' + _identifier(key))} AS {sql_type}) "
            f"AS {_identifier(column)}"
            for key, column, sql_type in attribute_columns(connection)
        ]
        connection.execute(
            "CREATE VIEW exposures AS SELECT visitor_id, variant, timestamp AS ts"
            + "".join(", " + a for a in attributes)
            + " FROM log WHERE type = 'exposure'"
        )
        for view, kind in (("events", "event"), ("pre_exposure_events", "pre_exposure")):
            connection.execute(
                f"CREATE VIEW {view} AS SELECT visitor_id, variant, event, value, "
                f"timestamp AS ts FROM log WHERE type = {_literal(kind)}"
            )
        per_metric = [_metric_column(m) for m in metrics if m.kind is not MetricKind.RATIO]
        connection.execute(
            "CREATE VIEW visitors AS SELECT x.* RENAME (ts AS exposed_at)"
            + "".join(", " + c for c in per_metric)
            + " FROM exposures x LEFT JOIN events e ON e.visitor_id = x.visitor_id"
            " GROUP BY ALL"
        )
    except BaseException:
        connection.close()
        raise
    return connection
