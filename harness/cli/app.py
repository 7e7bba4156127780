"""The `cqrs-bench` command line."""

from __future__ import annotations

import os
import signal
import sys

import psycopg
import typer
import uvicorn

from harness.bench.errors import BenchError
from harness.cli import bench_projector as bench_projector_cli
from harness.cli.analysis import compare as compare_command
from harness.cli.analysis import report as report_command
from harness.cli.bench import aggregates as bench_aggregates
from harness.cli.bench import checkout as bench_checkout
from harness.cli.bench import dashboards as bench_dashboards
from harness.cli.bench import load as bench_load
from harness.cli.bench import overhead as bench_overhead
from harness.cli.db import app as db_app
from harness.cli.history import state as history_state
from harness.cli.load import load
from harness.cli.options import (
    BASELINE,
    Cpus,
    ExitWithParent,
    ImplName,
    ReadDsn,
    ReplicaDsn,
    ScaleFactor,
    Seed,
    Settings,
    WriteDsn,
    pin_this_process,
)
from harness.cli.project import app as project_app
from harness.cli.project import rebuild as project_rebuild
from harness.cli.refresh import app as refresh_app
from harness.cli.results import app as results_app
from harness.cli.run import run as run_command
from harness.deploy.components import ComponentFailed, watch_parent
from harness.deploy.provision import attached, prepared, run_databases
from harness.deploy.provision import provision as provision_run
from harness.deploy.provision import ready_for_load as prepare_for_load
from harness.deploy.service import serve_workers
from harness.postgres.binaries import PostgresNotFound
from harness.postgres.server import ServerError
from harness.postgres.servers import require_lasting_servers, use_servers
from harness.postgres.templates import DatasetError
from harness.runner.run import LOCUSTFILE
from implementations import registry
from implementations.api import SIDES, create_app
from implementations.domain.errors import DomainError, Unavailable
from implementations.interface import MAX_RETRIES

app = typer.Typer(
    help="Measure whether CQRS fixes checkout latency: one order domain, several architectures.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(db_app, name="db")
app.add_typer(project_app, name="project")
app.add_typer(refresh_app, name="refresh")
app.command(
    "rebuild", help="Same as `project rebuild`: replay the whole history into empty read models."
)(project_rebuild)
app.command()(load)
app.command("state")(history_state)
app.command("run")(run_command)
app.command("report")(report_command)
app.command("compare")(compare_command)
app.add_typer(results_app, name="results")
bench_app = typer.Typer(
    help="Benchmarks that print their figures (speed is measured, not asserted)."
)
bench_app.command("checkout")(bench_checkout)
bench_app.command("overhead")(bench_overhead)
bench_app.command("load")(bench_load)
bench_app.command("dashboards")(bench_dashboards)
bench_app.command("aggregates")(bench_aggregates)
bench_app.command("rebuild")(bench_projector_cli.rebuild)
bench_app.command("lag")(bench_projector_cli.lag)
app.add_typer(bench_app, name="bench")

# Errors a user can fix: shown as one message, not a traceback.
USER_ERRORS = (
    PostgresNotFound,
    ServerError,
    DatasetError,
    ValueError,
    psycopg.OperationalError,  # the harness's own connections (admin, collectors)
    Unavailable,  # an implementation's call on a server that is down
    DomainError,
    BenchError,
    ComponentFailed,
)


@app.command()
def serve(
    impl: ImplName = BASELINE,
    side: str = typer.Option("both", help="Serve the command routes, the query routes, or both."),
    host: str = typer.Option("127.0.0.1", help="Address to bind; 0.0.0.0 exposes the service."),
    port: int = typer.Option(8000, help="TCP port."),
    database: str | None = typer.Option(
        None,
        help="Serve an existing run database (see `provision`) instead of a fresh clone; "
        "starts no projector (run `project run` for it).",
        show_default=False,
    ),
    sf: ScaleFactor = 0.1,
    seed: Seed = 42,
    keep: bool = typer.Option(False, help="Keep the fresh clone when the service stops."),
    retries: int = typer.Option(
        MAX_RETRIES,
        min=0,
        help="Times a command is run again after a serialization failure or a deadlock.",
    ),
    workers: int = typer.Option(
        1,
        min=1,
        help="Worker processes behind the one port (uvicorn's workers), each with its own "
        "connection pools on the same run database; 1: the service in this process (`run` "
        "starts its service with --service-workers).",
    ),
    exit_with_parent: ExitWithParent = False,
    cpus: Cpus = None,
    settings: Settings = None,
    write_dsn: WriteDsn = None,
    read_dsn: ReadDsn = None,
    replica_dsn: ReplicaDsn = None,
) -> None:
    """Serve one implementation over HTTP (OpenAPI at /docs): on a fresh clone of the dataset
    (with a projector process for CQRS), or on an existing run database with --database. SIGTERM
    or Ctrl-C stops it and every worker; with --workers, SIGHUP replaces the workers (uvicorn's)."""
    if side not in SIDES:
        raise ValueError(f"--side must be one of {', '.join(SIDES)}")
    registry.check(impl)
    given = registry.parse_settings(settings or (), [impl]).get(impl, {})
    pin_this_process(cpus)
    if exit_with_parent:  # as on Ctrl-C: the service stops, then whatever it started
        watch_parent(lambda: os.kill(os.getpid(), signal.SIGTERM))
    if database:
        require_lasting_servers(
            write_dsn, read_dsn, f"--database {database} needs the servers that hold it"
        )
    with use_servers(write_dsn, read_dsn, replica_dsn=replica_dsn) as servers:
        if database:
            dbs = run_databases(impl, servers, database)
            context = attached(impl, dbs, retries=retries, settings=given)
        else:
            context = prepared(
                impl, servers, sf=sf, seed=seed, keep=keep, retries=retries, settings=given
            )
        with context as implementation:
            write = implementation.config.write_dsn
            if not database:  # as `run` prepares its clones: no checkout refused for stock
                projection = implementation.projection
                read = projection.target_dsn if projection else None
                prepare_for_load(write, read if read != write else None)
            typer.echo(
                f"serving {impl} ({side}"
                + (f", {workers} worker processes" if workers > 1 else "")
                + "); Ctrl-C stops the service and removes what it started"
            )
            _say_how_to_load(write, host, port, side)
            where = {"host": host, "port": port, "log_level": "info", "access_log": False}
            if workers == 1:
                uvicorn.run(create_app(implementation, side), **where)
            else:  # each worker its own implementation on the same databases
                serve_workers(implementation, side, workers=workers, **where)


def _say_how_to_load(catalog_dsn: str, host: str, port: int, side: str) -> None:
    """The catalog DSN plain Locust reads customers and products from, and its command line."""
    typer.echo(f"catalog DSN (locust --catalog-dsn): {catalog_dsn}")
    if side == "both":
        url = f"http://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}"
        typer.echo(
            f"plain Locust: locust -f {LOCUSTFILE} --host {url} --mix mixed "
            f"--catalog-dsn {catalog_dsn}"
        )


@app.command()
def provision(
    impl: ImplName = BASELINE,
    sf: ScaleFactor = 0.1,
    seed: Seed = 42,
    name: str | None = typer.Option(
        None,
        help="Name of the run database; default: after the implementation and the time.",
        show_default=False,
    ),
    ready_for_load: bool = typer.Option(
        False,
        help="Prepare it as `run` prepares its clones: stock raised so no checkout is "
        "refused, then vacuumed, analyzed, checkpointed (for `run --database`).",
    ),
    write_dsn: WriteDsn = None,
    read_dsn: ReadDsn = None,
    replica_dsn: ReplicaDsn = None,
) -> None:
    """Make a run database that stays: a clone of the dataset with the implementation's schema
    and projected history. Serve it with `serve --database NAME` (one process per --side if you
    like), project it with `project run --database NAME`, drop it with `db drop NAME`."""
    require_lasting_servers(write_dsn, read_dsn, "provision makes a database that stays")
    with use_servers(write_dsn, read_dsn, replica_dsn=replica_dsn) as servers:
        dbs = provision_run(impl, servers, sf=sf, seed=seed, name=name, progress=typer.echo)
        if ready_for_load:
            prepare_for_load(dbs.write_dsn, dbs.read_dsn if dbs.separate else None)
    typer.echo(f"provisioned {dbs.name}")


def _exit_on_signal(signum: int, _frame) -> None:
    raise SystemExit(128 + signum)  # unwinds through every `finally`, which stops what we started


def main() -> None:
    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _exit_on_signal)
    try:
        app()
    except USER_ERRORS as exc:
        typer.secho(f"error: {exc}", fg="red", err=True)
        sys.exit(1)
    except KeyboardInterrupt:
        typer.secho("interrupted; stopped everything this command started", fg="yellow", err=True)
        sys.exit(130)
