"""`cqrs-bench project run | status | rebuild`: a CQRS implementation's projection."""

from __future__ import annotations

import json
import threading
import time
from pathlib import Path
from typing import Annotated

import typer

from harness.cli.options import (
    PROJECTED,
    Cpus,
    ExitWithParent,
    ImplName,
    ReadDsn,
    WriteDsn,
    pin_this_process,
)
from harness.deploy.components import watch_parent
from harness.deploy.projector import BATCH_SIZE, HISTORY_BATCH_SIZE, POLL_INTERVAL, projection_on
from harness.postgres.servers import given_dsns, persistent_servers
from harness.postgres.templates import database_dsn
from implementations.interface import Projection
from implementations.projector.engine import Applied

app = typer.Typer(help="Run, inspect and rebuild the projection of a CQRS implementation.")

Database = Annotated[
    str | None,
    typer.Option(
        "--database",
        help="Database (a run's clone) on the servers in use; default: the DSNs' own database.",
        show_default=False,
    ),
]


def servers_of(
    database: str | None, write_dsn: str | None, read_dsn: str | None
) -> tuple[str, str]:
    """(write DSN, read DSN) of the given servers or the `db up` pair, in `database` if named."""
    if given := given_dsns(write_dsn, read_dsn):
        write, read = given
    else:
        status = {role: s.status() for role, s in persistent_servers().items()}
        if not all(s.running for s in status.values()):
            raise ValueError("no servers: start them with `cqrs-bench db up`, or pass --write-dsn")
        if database is None:
            raise ValueError(
                "name the run's database with --database (see `psql -l` on the write server)"
            )
        write, read = status["write"].dsn, status["read"].dsn
    if database is not None:
        write, read = database_dsn(write, database), database_dsn(read, database)
    return write, read


def projection_of(
    impl: str, database: str | None, write_dsn: str | None, read_dsn: str | None
) -> Projection:
    """`impl`'s projection on the given servers or the `db up` pair."""
    return projection_on(impl, *servers_of(database, write_dsn, read_dsn))


def lag_record(applied: Applied) -> dict:
    """One batch for `--record-lag`: its apply commit and its events' source commits (epoch s)."""
    return {
        "applied_at": applied.applied_at,
        "source_commits": [c.timestamp() if c else None for c in applied.source_commits],
    }


@app.command()
def run(
    impl: ImplName = PROJECTED,
    database: Database = None,
    batch_size: int = typer.Option(BATCH_SIZE, min=1, help="Events per batch."),
    poll_interval: float = typer.Option(
        POLL_INTERVAL, min=0.01, help="Seconds between polls without a notification."
    ),
    exit_with_parent: ExitWithParent = False,
    record_lag: Path | None = typer.Option(
        None,
        help="Append one JSON line per applied batch to this file: when it committed and the "
        "source commit time of each of its events (epoch seconds), for the time lag per source "
        "commit.",
        show_default=False,
    ),
    cpus: Cpus = None,
    write_dsn: WriteDsn = None,
    read_dsn: ReadDsn = None,
) -> None:
    """Run the projector in the foreground until Ctrl-C (a standby while another one is active)."""
    pin_this_process(cpus)
    projection = projection_of(impl, database, write_dsn, read_dsn)
    stop = threading.Event()
    if exit_with_parent:
        watch_parent(stop.set)
    totals = {"events": 0, "batches": 0, "since": time.monotonic()}

    lag_log = record_lag.open("a", encoding="utf-8") if record_lag else None

    def report(applied: Applied) -> None:
        if lag_log:
            lag_log.write(json.dumps(lag_record(applied)) + "\n")
            lag_log.flush()
        totals["events"] += applied.count
        totals["batches"] += 1
        if time.monotonic() - totals["since"] >= 5:
            typer.echo(
                f"applied {totals['events']:,} events in {totals['batches']:,} batches; at {applied.last.token()}"
            )
            totals.update(events=0, batches=0, since=time.monotonic())

    projector = projection.projector(
        batch_size=batch_size, poll_interval=poll_interval, on_applied=report
    )
    typer.echo(
        f"projector for {impl}: outbox {projection.source_dsn}, read models {projection.target_dsn}"
    )
    try:  # run() opens the connections, and reopens them after an outage
        projector.run(
            stop,
            on_standby=lambda: None,
            on_outage=lambda exc, wait: typer.echo(
                f"server unavailable ({str(exc).strip().splitlines()[0]}); retrying in {wait:g}s"
            ),
        )
    finally:
        projector.close()
        if lag_log:
            lag_log.close()
    typer.echo("projector stopped")


@app.command()
def status(
    impl: ImplName = PROJECTED,
    database: Database = None,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    write_dsn: WriteDsn = None,
    read_dsn: ReadDsn = None,
) -> None:
    """Head and checkpoint, events behind, time lag of the last batch, and what holds it back."""
    st = projection_of(impl, database, write_dsn, read_dsn).status()
    if as_json:
        typer.echo(json.dumps(st.as_dict(), default=str, indent=2))
        return
    for key, value in st.as_dict().items():
        typer.echo(f"{key:20} {value}")


@app.command()
def rebuild(
    impl: ImplName = PROJECTED,
    database: Database = None,
    batch_size: int = typer.Option(HISTORY_BATCH_SIZE, min=1, help="Events per batch."),
    write_dsn: WriteDsn = None,
    read_dsn: ReadDsn = None,
) -> None:
    """Empty every read model and replay the full event history (no projector may be running)."""
    projection = projection_of(impl, database, write_dsn, read_dsn)
    started = time.perf_counter()
    with projection.projector(batch_size=batch_size) as projector:
        if not projector.try_lock():
            raise ValueError("a projector is running on this projection: stop it before a rebuild")
        events = projector.rebuild(
            progress=lambda n: (
                typer.echo(f"  {n:,} events", nl=True) if n % (batch_size * 20) == 0 else None
            )
        )
    seconds = time.perf_counter() - started
    typer.echo(
        f"rebuilt from {events:,} events in {seconds:.1f}s ({events / seconds:,.0f} events/s)"
    )
