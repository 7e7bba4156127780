"""`cqrs-bench refresh run | now`: the materialized views of an implementation with a refresher."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Annotated

import typer

from harness.cli.options import Cpus, ExitWithParent, ImplName, ReadDsn, WriteDsn, pin_this_process
from harness.cli.project import Database, servers_of
from harness.deploy.components import watch_parent
from harness.deploy.refresher import INTERVAL, record_line, refresher_on
from implementations import registry
from implementations.interface import Refresher

Interval = Annotated[
    float,
    typer.Option(min=0.1, help="Seconds from the start of one round of refreshes to the next."),
]
Record = Annotated[
    Path | None,
    typer.Option(
        help="Append one JSON line per refresh to this file: view, started_at, ended_at (epoch "
        "s) and backend_cpu_s.",
        show_default=False,
    ),
]

app = typer.Typer(help="Refresh the materialized views of an implementation with a refresher.")


def refresher_of(
    impl: str | None, database: str | None, write_dsn: str | None, read_dsn: str | None
) -> tuple[str, Refresher]:
    impl = impl or registry.refreshed()[0]
    return impl, refresher_on(impl, *servers_of(database, write_dsn, read_dsn))


def _say(impl: str, refreshed) -> None:
    took = refreshed.ended_at - refreshed.started_at
    cpu = "" if refreshed.backend_cpu_s is None else f", backend CPU {refreshed.backend_cpu_s:.2f}s"
    typer.echo(f"{impl}: refreshed {refreshed.view} in {took:.2f}s{cpu}")


@app.command()
def run(
    impl: ImplName = None,
    database: Database = None,
    interval: Interval = INTERVAL,
    record: Record = None,
    exit_with_parent: ExitWithParent = False,
    cpus: Cpus = None,
    write_dsn: WriteDsn = None,
    read_dsn: ReadDsn = None,
) -> None:
    """Refresh every view now, then every --interval seconds, until Ctrl-C."""
    pin_this_process(cpus)
    impl, refresher = refresher_of(impl, database, write_dsn, read_dsn)
    stop = threading.Event()
    if exit_with_parent:
        watch_parent(stop.set)
    log = record.open("a", encoding="utf-8") if record else None
    typer.echo(f"refresher for {impl}: every {interval:g}s")
    try:
        while not stop.is_set():
            began = time.monotonic()
            for refreshed in refresher.refresh():
                if log:
                    log.write(record_line(refreshed) + "\n")
                    log.flush()
                _say(impl, refreshed)
            stop.wait(max(0.0, interval - (time.monotonic() - began)))
    finally:
        refresher.close()
        if log:
            log.close()
    typer.echo("refresher stopped")


@app.command()
def now(
    impl: ImplName = None,
    database: Database = None,
    write_dsn: WriteDsn = None,
    read_dsn: ReadDsn = None,
) -> None:
    """Refresh every view once, now, and say how long each took."""
    impl, refresher = refresher_of(impl, database, write_dsn, read_dsn)
    try:
        for refreshed in refresher.refresh():
            _say(impl, refreshed)
    finally:
        refresher.close()
