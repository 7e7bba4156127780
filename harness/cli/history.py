"""`cqrs-bench state KIND NUMBER`: an order's or a product's state as of a version or a time, on an
event-sourced architecture's run database (time travel)."""

from __future__ import annotations

import json
from datetime import datetime

import typer

from harness.cli.options import ReadDsn, WriteDsn
from harness.cli.project import Database, servers_of
from implementations import registry
from implementations.interface import Config


def _event_sourced(impl: str | None) -> str:
    known = registry.event_sourced()
    name = registry.check(impl) if impl else (known[0] if known else "")
    if name not in known:
        raise ValueError(
            f"{name or 'no architecture'} keeps no history of states: time travel needs an "
            f"event-sourced architecture ({', '.join(known) or 'none in this tree'})"
        )
    return name


def state(
    kind: str = typer.Argument(..., help="order or product"),
    number: int = typer.Argument(..., min=1, help="The order's or product's id."),
    version: int | None = typer.Option(
        None,
        min=1,
        help="Its stream's version (1: created); default: the newest.",
        show_default=False,
    ),
    at: datetime | None = typer.Option(
        None,
        formats=["%Y-%m-%dT%H:%M:%S%z", "%Y-%m-%dT%H:%M:%S.%f%z", "%Y-%m-%d %H:%M:%S%z"],
        help="A time with its zone (2026-11-28T10:00:00+00:00): the state at the last version "
        "recorded by then.",
        show_default=False,
    ),
    impl: str | None = typer.Option(
        None,
        "--impl",
        help="An event-sourced architecture; default: the first.",
        show_default=False,
    ),
    database: Database = None,
    as_json: bool = typer.Option(False, "--json", help="Print JSON."),
    write_dsn: WriteDsn = None,
    read_dsn: ReadDsn = None,
) -> None:
    """An order's or a product's state as of a version of its stream or a time (time travel).

    Folds the stream's events up to that version (from the newest snapshot before it). Times are
    the run database's: its history was moved to end when it was cloned.
    """
    name = _event_sourced(impl)
    write, read = servers_of(database, write_dsn, read_dsn)
    implementation = registry.create(name, Config(write, read, pool_size=1))
    implementation.start()
    try:
        found = implementation.history.state_at(kind, number, version=version, at=at)
    finally:
        implementation.stop()
    if as_json:
        typer.echo(json.dumps(found.as_dict(), default=str, indent=2))
        return
    typer.echo(
        f"{found.kind} {found.id} at version {found.version} of {found.latest_version}, "
        f"recorded {found.recorded_at.isoformat()}"
    )
    for key, value in found.state.items():
        typer.echo(f"  {key:14} {value}")
