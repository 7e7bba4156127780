"""`cqrs-bench db up | status | down`: the embedded write and read servers."""

from __future__ import annotations

import psycopg
import typer

from harness.cli.options import ReadCpus, ReadDsn, WriteCpus, WriteDsn
from harness.postgres.binaries import find_bindir
from harness.postgres.servers import (
    given_dsns,
    parse_cpus,
    persistent_servers,
    persistent_standby,
    sweep_orphans,
    use_servers,
)
from harness.postgres.templates import drop_database

app = typer.Typer(help="Start, inspect and stop the embedded write and read PostgreSQL servers.")


def _version(dsn: str) -> str:
    try:
        with psycopg.connect(dsn, connect_timeout=3) as conn:
            return conn.execute("SHOW server_version").fetchone()[0]
    except psycopg.OperationalError as exc:
        return f"unreachable ({str(exc).strip().splitlines()[0]})"


@app.command()
def up(write_cpus: WriteCpus = None, read_cpus: ReadCpus = None) -> None:
    """Start the write and read servers (initdb on first use); a running pair is reused.

    While they run, every other command uses them by default. --write-cpus/--read-cpus pin each
    server to its own CPUs, so that one machine can stand in for two (see the README).
    """
    sweep_orphans()
    typer.echo(f"PostgreSQL binaries: {find_bindir()}")
    cpus = {"write": parse_cpus(write_cpus), "read": parse_cpus(read_cpus)}
    for role, server in persistent_servers().items():
        was_running = server.status().running
        if was_running and cpus[role]:
            typer.echo(f"{role}: already running; stop it (`db down`) to change its CPUs")
        status = server.start(cpus=cpus[role])
        verb = "already running" if was_running else "started"
        typer.echo(f"{role:5}  {verb:15}  {status.dsn}  (data: {status.datadir})")


@app.command()
def status(write_dsn: WriteDsn = None, read_dsn: ReadDsn = None) -> None:
    """Print each server's DSN, version and state (the given servers, else the embedded pair)."""
    if given := given_dsns(write_dsn, read_dsn):
        for role, dsn in zip(("write", "read"), given, strict=True):
            version = _version(dsn)
            state = "unreachable" if version.startswith("unreachable") else "running (given)"
            typer.echo(f"{role:5}  {state:16}  {dsn}  PostgreSQL {version}")
        return
    for role, server in persistent_servers().items():
        st = server.status()
        if st.running:
            line = f"running (pid {st.pid})  {st.dsn}  PostgreSQL {_version(st.dsn)}"
        elif server.initialized():
            line = f"stopped  (data: {st.datadir})"
        else:
            line = "not created (cqrs-bench db up)"
        typer.echo(f"{role:5}  {line}")


@app.command()
def down(
    purge: bool = typer.Option(False, "--purge", help="Also delete the servers' data directories."),
) -> None:
    """Stop the embedded servers (and any left behind by a command that was killed)."""
    for root in sweep_orphans():
        typer.echo(f"removed orphaned servers in {root}")
    standby = persistent_standby()
    if standby.initialized():  # first: it streams from the write server
        running = standby.status().running
        standby.remove() if purge else standby.stop()
        typer.echo(f"standby  {'stopped' if running else 'was not running'}")
    for role, server in persistent_servers().items():
        running = server.status().running
        if purge:
            server.remove()
        else:
            server.stop()
        done = "stopped" if running else "was not running"
        typer.echo(f"{role:5}  {done}{' and purged' if purge else ''}")


@app.command("drop")
def drop_command(
    name: str = typer.Argument(..., help="A run database (from `provision` or `serve --keep`)."),
    write_dsn: WriteDsn = None,
    read_dsn: ReadDsn = None,
) -> None:
    """Drop a run database from the write server and, where it has one, the read server."""
    if name.startswith("cqrsb_tpl_"):
        raise ValueError(
            f"{name} is a dataset template; rebuild it with `cqrs-bench load --rebuild`"
        )
    with use_servers(write_dsn, read_dsn) as servers:
        for role, dsn in (("write", servers.write_dsn), ("read", servers.read_dsn)):
            if drop_database(dsn, name):
                typer.echo(f"dropped {name} from the {role} server")
            if servers.read_dsn == servers.write_dsn:
                break
