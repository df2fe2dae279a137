"""The ``abacus`` command: run the service and manage experiments from a terminal.

``abacus serve`` starts the embedded Redis itself when ``ABACUS_REDIS_URL`` is not set and hands
its URL to the workers, so several workers share one store. It stops that Redis however it is
stopped: on SIGINT and SIGTERM (uvicorn re-raises the signal once it has shut down, so the
process turns SIGTERM into an exit that runs its cleanup), with any number of workers, and, if
it dies without cleaning up (SIGKILL, a crash), through the kernel: the server gets SIGTERM
when its parent dies. A second ``serve`` on a data directory in use is refused.

Experiment and key commands talk to a running service over HTTP (``--url``, default
``$ABACUS_URL`` or http://127.0.0.1:8000) with the key in ``$ABACUS_KEY`` (else
``$ABACUS_ADMIN_KEY``), and so do ``abacus report`` and ``abacus results`` (they render
the typed read-out locally).
``abacus demo`` writes to the store directly, like ``serve --demo``.
"""

from __future__ import annotations

import argparse
import ipaddress
import json
import os
import signal
import sys
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from rich.progress import Progress

    from experiments.definitions import Experiment
    from service.readout.model import ExperimentResults

__all__ = ["build_parser", "main"]

DEFAULT_URL = "http://127.0.0.1:8000"


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from experiments.embedded import EmbeddedRedis
    from experiments.errors import StoreUnavailableError
    from service.settings import Settings

    try:
        settings = Settings.from_env()
    except ValueError as exc:
        print(f"abacus serve: {exc}", file=sys.stderr)
        return 2
    if settings.admin_key is None and not _is_loopback(args.host):
        print(
            f"refusing to listen on {args.host}: ABACUS_ADMIN_KEY is not set, so the admin "
            "endpoints would be open; set it, or listen on 127.0.0.1",
            file=sys.stderr,
        )
        return 2
    if settings.admin_key is None:
        print("ABACUS_ADMIN_KEY is not set: admin endpoints are open, listening on loopback only")
    embedded = None
    if settings.redis_url is None:
        try:
            embedded = EmbeddedRedis(settings.data_dir, die_with_parent=True).start()
        except StoreUnavailableError as exc:
            print(f"abacus serve: refusing to start: {exc}", file=sys.stderr)
            return 2
        os.environ["ABACUS_REDIS_URL"] = embedded.url
        print(f"embedded Redis (pid {embedded.pid}) with its data in {settings.data_dir}")
    # uvicorn handles SIGTERM itself, then raises it again: make that an exit that runs `finally`
    signal.signal(signal.SIGTERM, _exit_on_signal)
    signal.signal(signal.SIGHUP, _exit_on_signal)
    try:
        if args.demo:
            from service.demo.simulation import run_demo

            run_demo(Settings.from_env(), seed=args.seed)
        print(f"Abacus on http://{args.host}:{args.port}  (API docs at /docs)")
        uvicorn.run(
            "service.api.app:create_app",
            factory=True,
            host=args.host,
            port=args.port,
            workers=args.workers,
            loop="uvloop",
            http="httptools",
            log_level=args.log_level,
            access_log=False,
        )
    finally:
        if embedded is not None:
            embedded.stop()
    return 0


def _exit_on_signal(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)


def _http(args: argparse.Namespace, method: str, path: str, body: Any = None) -> Any:
    import httpx

    key = os.environ.get("ABACUS_KEY") or os.environ.get("ABACUS_ADMIN_KEY")
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    try:
        response = httpx.request(method, args.url + path, json=body, headers=headers, timeout=30)
    except httpx.HTTPError as exc:
        raise SystemExit(f"cannot reach {args.url}: {exc}") from exc
    if response.status_code >= 400:
        try:
            message = response.json().get("message", response.text)
        except ValueError:
            message = response.text
        raise SystemExit(f"error {response.status_code}: {message}")
    return response.json() if response.content else None


def _experiments(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Column, Table

    console = Console()
    if args.action == "list":
        table = Table(
            Column("key", no_wrap=True),
            "name",
            Column("status", no_wrap=True),
            "variants",
            "coverage",
            "metrics",
        )
        for e in _http(args, "GET", "/v1/experiments"):
            variants = ", ".join(f"{v['key']} {v['weight']:.0%}" for v in e["variants"])
            table.add_row(
                e["key"],
                e["name"],
                e["status"],
                variants,
                f"{e['coverage']:.0%}",
                ", ".join(m["name"] for m in e["metrics"]),
            )
        console.print(table)
        return 0
    if args.action == "create":
        definition = json.loads(Path(args.target).read_text())
        created = _http(args, "POST", "/v1/experiments", definition)
        console.print(f"created {created['key']} ({created['status']})")
        return 0
    status = {"start": "running", "pause": "paused", "stop": "stopped"}[args.action]
    body: dict[str, Any] = {"status": status}
    if args.winner:
        body["winner"] = args.winner
    updated = _http(args, "PATCH", f"/v1/experiments/{args.target}", body)
    console.print(f"{updated['key']} is now {updated['status']}")
    return 0


def _keys(args: argparse.Namespace) -> int:
    from urllib.parse import quote

    from rich.console import Console
    from rich.panel import Panel
    from rich.table import Column, Table

    console = Console()
    if args.action == "create":
        created = _http(args, "POST", "/v1/keys", {"name": args.target, "role": args.role})
        console.print(
            Panel(
                f"[bold]{created['key']}[/bold]\n\nThis is the only time the key is shown: "
                "store it now (Abacus keeps only its digest).",
                title=f"key {created['name']!r} ({created['role']}), id {created['id']}",
            )
        )
        return 0
    if args.action == "revoke":
        _http(args, "DELETE", f"/v1/keys/{quote(args.target, safe='')}")
        console.print(f"revoked key {args.target}; its sessions are closed")
        return 0
    table = Table(Column("id", no_wrap=True), "name", Column("role", no_wrap=True), "created")
    for k in _http(args, "GET", "/v1/keys"):
        created_at = k["created_at"]
        when = (
            "ABACUS_ADMIN_KEY (bootstrap)"
            if created_at is None
            else datetime.fromtimestamp(created_at, UTC).strftime("%Y-%m-%d %H:%M UTC")
        )
        table.add_row(k["id"], k["name"], k["role"], when)
    console.print(table)
    return 0


def _demo(args: argparse.Namespace) -> int:
    from service.demo.simulation import run_demo
    from service.settings import Settings

    run_demo(Settings.from_env(), seed=args.seed, scale=args.scale, reset=args.reset)
    return 0


def _readout(args: argparse.Namespace) -> tuple[Experiment, ExperimentResults]:
    """The experiment definition and its read-out, fetched from the running service."""
    from urllib.parse import quote

    from experiments.definitions import Experiment
    from service.readout.model import ExperimentResults

    path = f"/v1/experiments/{quote(args.key, safe='')}"
    experiment = Experiment.model_validate(_http(args, "GET", path))
    dimension = getattr(args, "dimension", None)
    query = "" if dimension is None else f"?dimension={quote(dimension, safe='')}"
    results = _http(args, "GET", path + "/results" + query)
    return experiment, ExperimentResults.model_validate(results)


def _report(args: argparse.Namespace) -> int:
    from service.report.html import report_html

    experiment, results = _readout(args)
    out = Path(args.out)
    out.write_text(report_html(experiment, results, standalone=True), encoding="utf-8")
    print(f"wrote the report of {experiment.key} to {out} ({out.stat().st_size:,} bytes)")
    return 0


def _results(args: argparse.Namespace) -> int:
    from rich.console import Console

    from service.report.terminal import results_renderables

    experiment, results = _readout(args)
    if args.json:
        print(results.model_dump_json(indent=2))
        return 0
    Console().print(results_renderables(experiment, results))
    return 0


def _count_rows(path: Path, fmt: str) -> int:
    if fmt == "parquet":
        import pyarrow.parquet as pq

        return int(pq.ParquetFile(path).metadata.num_rows)
    lines = 0
    with path.open("rb") as handle:
        while block := handle.read(1 << 20):
            lines += block.count(b"\n")
    return lines - 1 if fmt == "csv" else lines


def _export(args: argparse.Namespace) -> int:
    import tempfile

    from rich.console import Console
    from rich.progress import (
        BarColumn,
        DownloadColumn,
        Progress,
        TextColumn,
        TimeElapsedColumn,
        TransferSpeedColumn,
    )

    from service.client import Client, ClientError

    console = Console(stderr=True)
    out = Path(args.out)
    to_sql = args.format == "duckdb"
    with (
        Client(args.url, os.environ.get("ABACUS_ADMIN_KEY")) as client,
        tempfile.TemporaryDirectory() as scratch,
        Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            TimeElapsedColumn(),
            console=console,
        ) as progress,
    ):
        fetched = Path(scratch) / "events.parquet" if to_sql else out
        task = progress.add_task(f"{args.key} events ({args.format})", total=None)
        try:
            download = client.download_events(
                args.key,
                fetched,
                format="parquet" if to_sql else args.format,
                pre_exposure=not args.no_pre_exposure,
                lookback_days=args.lookback_days,
                on_progress=lambda size: progress.advance(task, size),
            )
            definition = client.experiment(args.key) if to_sql else None
        except ClientError as exc:
            out.unlink(missing_ok=True)
            raise SystemExit(f"error {exc.status}: {exc.message}") from exc
        progress.update(task, total=download.bytes, completed=download.bytes)
        if definition is not None:
            rows = _write_duckdb(progress, fetched, out, definition)
        else:
            rows = _count_rows(out, args.format)
    print(
        f"wrote {rows:,} rows of {args.key} ({download.exposures:,} exposures counted) to {out} "
        f"({out.stat().st_size:,} bytes)"
    )
    if to_sql:
        print("views: exposures, events, visitors, pre_exposure_events (table log)")
    return 0


def _write_duckdb(progress: Progress, parquet: Path, out: Path, definition: dict[str, Any]) -> int:
    """Load the downloaded log into a DuckDB file at ``out``; the rows of its ``log`` table."""
    from experiments.definitions import Experiment
    from service.sql import load_log

    experiment = Experiment.model_validate(definition)
    task = progress.add_task(f"{experiment.key} into DuckDB", total=1)
    connection = load_log(parquet, experiment.metrics, database=out)
    try:
        row = connection.execute("SELECT count(*) FROM log").fetchone()
    finally:
        connection.close()
    progress.update(task, completed=1)
    return 0 if row is None else int(row[0])


def _bandit(args: argparse.Namespace) -> int:
    from urllib.parse import quote

    from rich.console import Console
    from rich.table import Table

    from service.bandit import BanditReport

    path = f"/v1/experiments/{quote(args.key, safe='')}/bandit"
    if args.action == "step":
        path += "/step?force=" + str(args.force).lower()
        report = BanditReport.model_validate(_http(args, "POST", path))
    else:
        report = BanditReport.model_validate(_http(args, "GET", path))
    console = Console()
    table = Table("period", "started", "weights", "visitors", "conversions", title=report.metric)
    for period in report.periods:
        started = datetime.fromtimestamp(period.started_at, UTC).strftime("%Y-%m-%d %H:%M")
        table.add_row(
            str(period.index),
            started,
            " / ".join(f"{w:.3f}" for w in period.weights),
            "open" if period.visitors is None else " / ".join(f"{n:,}" for n in period.visitors),
            ""
            if period.conversions is None
            else " / ".join(f"{c:,.0f}" for c in period.conversions),
        )
    console.print(table)
    for row in report.comparisons:
        if row.absolute_lift is None or row.absolute_ci is None:
            console.print(f"{row.variant}: not comparable yet ({row.reason})")
            continue
        low, high = row.absolute_ci
        console.print(
            f"{row.variant} vs control, period-weighted: {row.absolute_lift:+.4f} "
            f"[{low:+.4f}, {high:+.4f}], p = {row.pvalue:.4g} over {row.periods} periods"
        )
    if args.action == "step":
        weights = ", ".join(f"{k} {w:.1%}" for k, w in report.weights.items())
        verb = "re-weighted" if report.stepped else "not due yet; weights stay"
        console.print(f"{report.experiment} {verb}: {weights}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="abacus", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    serve = sub.add_parser("serve", help="run the HTTP service")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8000)
    serve.add_argument("--workers", type=int, default=1)
    serve.add_argument("--demo", action="store_true", help="load the case-study demo data first")
    serve.add_argument("--seed", type=int, default=2024, help="random seed of the demo data")
    serve.add_argument("--log-level", default="info")
    serve.set_defaults(run=_serve)

    exp = sub.add_parser("experiments", help="list, create, start, pause and stop experiments")
    exp.add_argument("action", choices=["list", "create", "start", "pause", "stop"])
    exp.add_argument("target", nargs="?", help="definition JSON file (create) or experiment key")
    exp.add_argument("--winner", help="with stop: the variant to roll out")
    exp.add_argument("--url", default=os.environ.get("ABACUS_URL", DEFAULT_URL))
    exp.set_defaults(run=_experiments)

    keys = sub.add_parser("keys", help="create, list and revoke API keys (admin keys only)")
    keys.add_argument("action", choices=["create", "list", "revoke"])
    keys.add_argument("target", nargs="?", help="the new key's name (create) or a key id (revoke)")
    keys.add_argument(
        "--role", choices=["viewer", "editor", "admin"], default="viewer", help="with create"
    )
    keys.add_argument("--url", default=os.environ.get("ABACUS_URL", DEFAULT_URL))
    keys.set_defaults(run=_keys)

    demo = sub.add_parser(
        "demo", help="load the case-study experiments with simulated visitors (into the store)"
    )
    demo.add_argument("--seed", type=int, default=2024, help="random seed (default 2024)")
    demo.add_argument("--reset", action="store_true", help="delete and recreate existing ones")
    demo.add_argument(
        "--scale", type=float, default=1.0, help="traffic multiplier; 1 is the full demo"
    )
    demo.set_defaults(run=_demo)

    report = sub.add_parser("report", help="write an experiment's report as one HTML file")
    report.add_argument("key", help="experiment key")
    report.add_argument("--out", required=True, help="file to write, e.g. report.html")
    report.add_argument("--dimension", help="include the breakdown by this dimension")
    report.add_argument("--url", default=os.environ.get("ABACUS_URL", DEFAULT_URL))
    report.set_defaults(run=_report)

    results = sub.add_parser("results", help="print an experiment's read-out as tables")
    results.add_argument("key", help="experiment key")
    results.add_argument("--json", action="store_true", help="print the read-out as JSON")
    results.add_argument("--dimension", help="also break the results down by this dimension")
    results.add_argument("--url", default=os.environ.get("ABACUS_URL", DEFAULT_URL))
    results.set_defaults(run=_results)

    export = sub.add_parser(
        "export",
        help="download an experiment's raw event log (Parquet, CSV, JSON Lines or a DuckDB "
        "database with the views exposures, events and visitors)",
    )
    export.add_argument("key", help="experiment key")
    export.add_argument("--format", choices=["parquet", "csv", "json", "duckdb"], default="parquet")
    export.add_argument(
        "--out", required=True, help="file to write, e.g. events.parquet or log.duckdb"
    )
    export.add_argument(
        "--no-pre-exposure",
        action="store_true",
        help="leave out the visitors' events from before their exposure",
    )
    export.add_argument(
        "--lookback-days",
        type=int,
        default=30,
        help="pre-exposure events at most this many days before each exposure (default 30)",
    )
    export.add_argument("--url", default=os.environ.get("ABACUS_URL", DEFAULT_URL))
    export.set_defaults(run=_export)

    bandit = sub.add_parser(
        "bandit", help="show a bandit's periods, or close its period and re-weight it"
    )
    bandit.add_argument("action", choices=["show", "step"])
    bandit.add_argument("key", help="experiment key")
    bandit.add_argument(
        "--force", action="store_true", help="with step: close the period even if it is not over"
    )
    bandit.add_argument("--url", default=os.environ.get("ABACUS_URL", DEFAULT_URL))
    bandit.set_defaults(run=_bandit)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "action", "list") != "list" and not getattr(args, "target", "x"):
        parser.error(f"{args.command} {args.action} needs a target")
    result: int = args.run(args)
    return result


if __name__ == "__main__":
    raise SystemExit(main())
