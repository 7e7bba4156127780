"""cqrs-physical as separate services, run as a user runs them: `provision`, then one `serve`
process per side and a `project run` process on that run database, then `db drop`."""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psycopg
import pytest
from conftest import processes_mentioning
from test_db_cli import _cli, _env

from harness.postgres.server import free_port
from harness.postgres.servers import Servers

CHECKOUT = Path(__file__).resolve().parents[1]
PATIENCE = 120.0  # seconds a process may take to start or stop (not a measurement)
COMMAND_ROUTES = {
    ("post", "/orders"),
    ("post", "/orders/{order_id}/cancel"),
    ("post", "/orders/{order_id}/ship"),
    ("post", "/products/{product_id}/price"),
    ("post", "/products/{product_id}/discontinue"),
    ("post", "/products/{product_id}/restock"),
    ("get", "/history/{kind}/{number}"),  # time travel reads the event store: the write side's
}
QUERY_ROUTES = {
    ("get", "/orders/{order_id}"),
    ("get", "/customers/{customer_id}/orders"),
    ("get", "/dashboard/sales-by-category"),
    ("get", "/dashboard/top-products"),
    ("get", "/dashboard/revenue"),
    ("get", "/products/search"),
    ("post", "/reports"),  # a report: a transaction the query side holds for its queries
    ("delete", "/reports/{report}"),
}
SERVICE_ROUTES = {("get", "/health"), ("get", "/status")}


class Cli:
    """Runs `cqrs-bench` as subprocesses against given servers; stops what it started."""

    def __init__(self, home: Path, servers: Servers) -> None:
        self.home = home
        self.dsns = ("--write-dsn", servers.write_dsn, "--read-dsn", servers.read_dsn)
        self.started: list[tuple[subprocess.Popen, Path]] = []
        self.databases: list[str] = []

    def run(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run(
            _cli(*args, *self.dsns),
            env=_env(self.home),
            capture_output=True,
            text=True,
            timeout=PATIENCE * 2,
        )

    def start(self, *args: str) -> subprocess.Popen:
        log = self.home / f"process-{len(self.started)}.log"
        with log.open("w") as out:
            proc = subprocess.Popen(
                _cli(*args, *self.dsns),
                stdout=out,
                stderr=subprocess.STDOUT,
                env=_env(self.home, PYTHONUNBUFFERED="1"),
            )
        self.started.append((proc, log))
        return proc

    def output(self, proc: subprocess.Popen) -> str:
        return next(log for p, log in self.started if p is proc).read_text()

    def wait_for_line(self, proc: subprocess.Popen, needle: str) -> None:
        deadline = time.monotonic() + PATIENCE
        while needle not in self.output(proc):
            if proc.poll() is not None or time.monotonic() > deadline:
                raise AssertionError(f"never printed {needle!r}:\n{self.output(proc)}")
            time.sleep(0.05)

    def terminate(self, proc: subprocess.Popen) -> int | None:
        """SIGTERM by PID, as a service manager stops a service; its exit status, or None if it
        had to be killed."""
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
        try:
            return proc.wait(timeout=PATIENCE)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
            return None

    def drop_databases(self) -> None:
        for name in list(self.databases):
            for _attempt in range(20):  # the sessions of a process just stopped may linger
                if self.run("db", "drop", name).returncode == 0:
                    self.databases.remove(name)
                    break
                time.sleep(0.5)


@pytest.fixture
def cli(servers: Servers) -> Iterator[Cli]:
    home = CHECKOUT / ".work" / f"test-sides-{os.getpid()}-{time.monotonic_ns()}"
    home.mkdir(parents=True)
    runner = Cli(home, servers)
    try:
        yield runner
    finally:  # a test that failed half-way still stops what it started and drops what it made
        for proc, _log in runner.started:
            runner.terminate(proc)
        runner.drop_databases()
        shutil.rmtree(home, ignore_errors=True)


def _routes(base_url: str) -> set[tuple[str, str]]:
    paths = httpx.get(f"{base_url}/openapi.json", timeout=30).json()["paths"]
    return {(method, path) for path, methods in paths.items() for method in methods}


def _databases(server_dsn: str) -> set[str]:
    with psycopg.connect(server_dsn) as conn:
        return {row[0] for row in conn.execute("SELECT datname FROM pg_database")}


def _eventually_no_sessions(server_dsn: str, name: str) -> None:
    """Wait until no session is connected to database `name`: its clients closed them."""
    deadline = time.monotonic() + PATIENCE
    with psycopg.connect(server_dsn, autocommit=True) as conn:
        query = "SELECT application_name FROM pg_stat_activity WHERE datname = %s"
        while sessions := conn.execute(query, (name,)).fetchall():
            assert time.monotonic() < deadline, f"sessions left on {name}: {sessions}"
            time.sleep(0.05)


def _catalog(server_dsn: str, name: str) -> tuple[int, int]:
    """A customer and an active product of the run database `name` on the write server."""
    with psycopg.connect(server_dsn.rsplit("/", 1)[0] + f"/{name}") as conn:
        customer = conn.execute("SELECT min(id) FROM customers").fetchone()[0]
        product = conn.execute(
            "SELECT id FROM products WHERE status = 'active' ORDER BY stock DESC, id LIMIT 1"
        ).fetchone()[0]
    return customer, product


def test_commands_and_queries_run_as_separate_services(cli, servers):
    provisioned = cli.run("provision", "--impl", "cqrs-physical", "--sf", "0.01")
    assert provisioned.returncode == 0, provisioned.stdout + provisioned.stderr
    name = re.search(r"^provisioned (\w+)$", provisioned.stdout, re.MULTILINE).group(1)
    cli.databases.append(name)
    assert name in _databases(servers.write_dsn) and name in _databases(servers.read_dsn)

    run_database = ("--impl", "cqrs-physical", "--database", name)
    ports = {"commands": free_port(), "queries": free_port()}
    while ports["queries"] == ports["commands"]:
        ports["queries"] = free_port()
    services = {
        side: cli.start("serve", *run_database, "--side", side, "--port", str(port))
        for side, port in ports.items()
    }
    projector = cli.start("project", "run", *run_database, "--poll-interval", "0.1")
    for side, proc in services.items():
        cli.wait_for_line(proc, f"Uvicorn running on http://127.0.0.1:{ports[side]}")
    cli.wait_for_line(projector, "projector for cqrs-physical")
    commands, queries = (f"http://127.0.0.1:{ports[side]}" for side in ("commands", "queries"))

    for side, base_url in (("commands", commands), ("queries", queries)):
        health = httpx.get(f"{base_url}/health", timeout=30).json()
        assert health == {"status": "ok", "implementation": "cqrs-physical", "side": side}
        status = httpx.get(f"{base_url}/status", timeout=30).json()
        assert status["side"] == side and status["sides"] == {"write": "up", "read": "up"}
    assert _routes(commands) == COMMAND_ROUTES | SERVICE_ROUTES
    assert _routes(queries) == QUERY_ROUTES | SERVICE_ROUTES

    customer, product = _catalog(servers.write_dsn, name)
    order = {"customer_id": customer, "lines": [{"product_id": product, "quantity": 1}]}
    placed = httpx.post(f"{commands}/orders", json=order, timeout=30)
    assert placed.status_code == 201, placed.text
    placed = placed.json()
    summary = httpx.get(
        f"{queries}/orders/{placed['order_id']}", params={"after": placed["token"]}, timeout=30
    )
    assert summary.status_code == 200, summary.text
    assert summary.json()["customer_id"] == customer
    assert summary.json()["total_cents"] == placed["total_cents"]
    assert summary.headers["X-Write-Side"] == "up" and summary.headers["X-Read-Models-As-Of"]
    recent = httpx.get(
        f"{queries}/customers/{customer}/orders", params={"after": placed["token"]}, timeout=30
    ).json()
    assert placed["order_id"] in [o["order_id"] for o in recent["recent"]]

    # Each service answers only its own side's routes.
    assert httpx.get(f"{commands}/orders/{placed['order_id']}", timeout=30).status_code == 404
    assert httpx.get(f"{commands}/products/search", timeout=30).status_code == 404
    assert httpx.post(f"{queries}/orders", json=order, timeout=30).status_code in (404, 405)
    assert (
        httpx.post(f"{queries}/orders/{placed['order_id']}/cancel", timeout=30).status_code == 404
    )

    for proc in (*services.values(), projector):
        assert cli.terminate(proc) == 128 + signal.SIGTERM, cli.output(proc)
        assert "Traceback" not in cli.output(proc), cli.output(proc)
    for proc in services.values():
        assert "Application shutdown complete" in cli.output(proc)
    for server_dsn in (servers.write_dsn, servers.read_dsn):
        _eventually_no_sessions(server_dsn, name)
    dropped = cli.run("db", "drop", name)
    assert dropped.returncode == 0, dropped.stderr
    assert dropped.stdout.splitlines() == [
        f"dropped {name} from the write server",
        f"dropped {name} from the read server",
    ]
    cli.databases.remove(name)
    assert name not in _databases(servers.write_dsn) | _databases(servers.read_dsn)
    assert processes_mentioning(name) == [], "a service or projector is still running"
    for port in ports.values():
        with pytest.raises(httpx.ConnectError):
            httpx.get(f"http://127.0.0.1:{port}/health", timeout=5)
