"""Real PostgreSQL for the test suite: one write and one read server started for the session."""

from __future__ import annotations

import os
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import psutil
import psycopg
import pytest
from psycopg import sql

from harness.postgres.servers import READ_DSN_ENV, WRITE_DSN_ENV, Servers, standby_dsn, use_servers
from harness.postgres.standby import wait_replayed
from harness.postgres.templates import clone, database_dsn, drop_database, ensure_template
from implementations import contract, registry
from implementations.db import make_engine
from implementations.interface import Config, Implementation
from implementations.projector.background import projector_thread
from implementations.write_model import schema_sql


@pytest.fixture(scope="session")
def servers() -> Iterator[Servers]:
    """A throwaway server pair owned by this test session (never a developer's `db up` pair).

    It lives under the checkout's .work/ because pytest's own temporary directories are private
    to root, and the servers run as the postgres user when the tests run as root.
    """
    saved = {k: os.environ.pop(k, None) for k in (WRITE_DSN_ENV, READ_DSN_ENV)}
    home = Path(__file__).resolve().parents[1] / ".work" / f"tests-{os.getpid()}"
    os.environ["CQRS_BENCH_HOME"] = str(home)
    try:
        with use_servers(announce=lambda _msg: None) as pair:
            yield pair
    finally:
        os.environ.pop("CQRS_BENCH_HOME", None)
        shutil.rmtree(home, ignore_errors=True)
        os.environ.update({k: v for k, v in saved.items() if v is not None})


@pytest.fixture
def empty_write_model(servers: Servers) -> Iterator[str]:
    """A new database on the write server holding the empty write-model schema; its DSN."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(servers.write_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    dsn = servers.write_dsn.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(schema_sql())
    yield dsn
    with psycopg.connect(servers.write_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def contract_catalog(empty_write_model: str) -> str:
    """The contract scenario's catalog in a fresh write model; its DSN."""
    engine = make_engine(empty_write_model, component="test-seed", pool_size=1)
    with engine.begin() as conn:
        contract.seed(conn)
    engine.dispose()
    return empty_write_model


@pytest.fixture
def crud(contract_catalog: str) -> Iterator[Implementation]:
    """The crud implementation, installed and started on the contract catalog."""
    yield from started("crud", Config(contract_catalog, contract_catalog, pool_size=24))


WRITE_TABLES = ("customers", "products", "orders", "order_lines", "price_history", "outbox")


def table_digest(dsn: str, tables: tuple[str, ...] = WRITE_TABLES) -> dict[str, str]:
    """md5 of each table's rows in a fixed order: equal digests mean equal contents."""
    with psycopg.connect(dsn) as conn:
        return {
            table: conn.execute(
                sql.SQL(
                    "SELECT md5(coalesce(string_agg(t::text, '|' ORDER BY t::text), '')) FROM {} t"
                ).format(sql.Identifier(table))
            ).fetchone()[0]
            for table in tables
        }


def started(name: str, config: Config) -> Iterator[Implementation]:
    """`name` installed and started; with a projection, caught up first and with a projector
    thread running while it is used."""
    impl = registry.create(name, config)
    impl.install()
    if impl.projection is None:
        impl.start()
        yield impl
        impl.stop()
        return
    with impl.projection.projector() as catch_up:
        catch_up.catch_up()
    with projector_thread(*impl.projection.dsns, source=impl.projection.source, poll_interval=0.2):
        impl.start()
        yield impl
        impl.stop()


def on_standby(servers: Servers, dsn: str) -> str:
    """The database of `dsn` (on the write server) on the session's standby (started on first
    use), once the standby has replayed everything written so far; its DSN there."""
    standby = standby_dsn(servers)
    wait_replayed(servers.write_dsn, standby)
    return database_dsn(standby, psycopg.conninfo.conninfo_to_dict(dsn)["dbname"])


@pytest.fixture
def start_on_contract(request: pytest.FixtureRequest) -> Iterator[Callable[[str], Implementation]]:
    """A function that starts an architecture by name on the contract catalog (read models on an
    empty database of the read server when its architecture keeps them there); everything it
    started is stopped at teardown."""
    with ExitStack() as stack:

        def start(name: str) -> Implementation:
            catalog = request.getfixturevalue("contract_catalog")
            arch = registry.architecture(name)
            read = (
                request.getfixturevalue("empty_read_database")
                if arch.separate_read_server
                else catalog
            )
            if arch.reads_standby:  # the same database, on the session's standby
                read = on_standby(request.getfixturevalue("servers"), catalog)
            config = Config(catalog, read, pool_size=24)
            return stack.enter_context(contextmanager(started)(name, config))

        yield start


@pytest.fixture
def cqrs_logical(contract_catalog: str) -> Iterator[Implementation]:
    """cqrs-logical on the contract catalog, caught up, with a projector thread running."""
    yield from started("cqrs-logical", Config(contract_catalog, contract_catalog, pool_size=24))


@pytest.fixture
def empty_read_database(servers: Servers) -> Iterator[str]:
    """A new, empty database on the read server; its DSN."""
    name = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(servers.read_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    yield servers.read_dsn.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(servers.read_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def cqrs_physical(contract_catalog: str, empty_read_database: str) -> Iterator[Implementation]:
    """cqrs-physical: the contract catalog on the write server, read models on the read server."""
    yield from started("cqrs-physical", Config(contract_catalog, empty_read_database, pool_size=24))


@pytest.fixture(params=registry.names())
def impl(request: pytest.FixtureRequest, start_on_contract) -> Implementation:
    """Each architecture in turn, started on the contract catalog (projector running)."""
    return start_on_contract(request.param)


def processes_mentioning(text: str) -> list[str]:
    """Command lines of live processes (other than pytest) that mention `text`."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if text in cmdline and "pytest" not in cmdline:
                found.append(cmdline)
    return found


@pytest.fixture
def dataset_clone(servers: Servers) -> Iterator[str]:
    """A clone of the small seeded dataset (sf 0.01, seed 42) on the write server; its DSN."""
    template = ensure_template(servers.write_dsn, 0.01, 42, progress=lambda _message: None)
    name = f"test_bench_{uuid.uuid4().hex[:12]}"
    yield clone(servers.write_dsn, template.name, name)
    drop_database(servers.write_dsn, name)


def until_measuring(
    proc: subprocess.Popen, timeout: float = 180
) -> tuple[str, list[psutil.Process]]:
    """Read a `cqrs-bench run` child's output until its load is measured: what it printed, and
    its descendant processes at that moment."""
    seen, deadline = [], time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        seen.append(line)
        if "measure" in line and "req/s" in line:  # the load is running and measured
            return "".join(seen), psutil.Process(proc.pid).children(recursive=True)
        assert line or proc.poll() is None, "".join(seen)
    raise AssertionError("never started measuring:\n" + "".join(seen))


def still_running(processes: list[psutil.Process]) -> list[list[str]]:
    """The command lines of those of `processes` still alive (zombies are not)."""
    return [p.cmdline() for p in processes if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
