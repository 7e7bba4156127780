"""`cqrs-bench serve --workers 2`: two worker processes behind one port, both serving the same
run database, and no process left behind however the service is stopped: SIGTERM, its parent
gone (`--exit-with-parent`), or the supervisor itself killed outright."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import psutil
import psycopg
import pytest
from test_db_cli import _cli, _env

from harness.deploy.service import TcpConfig
from harness.postgres.server import free_port
from harness.postgres.servers import Servers

CHECKOUT = Path(__file__).resolve().parents[1]
PATIENCE = 60.0  # seconds a process may take to start or stop (not a measurement)


class Served:
    """`serve --workers 2 --exit-with-parent` on a run database, started by this process or by
    a stand-in parent process (to be killed); its port, log and processes."""

    def __init__(self, servers: Servers, dsn: str, home: Path, *, stand_in_parent: bool) -> None:
        self.port = free_port()
        self.log = home / "serve.log"
        database = psycopg.conninfo.conninfo_to_dict(dsn)["dbname"]
        command = _cli(
            "serve",
            "--impl",
            "crud",
            "--database",
            database,
            "--port",
            str(self.port),
            "--workers",
            "2",
            "--exit-with-parent",
            "--write-dsn",
            servers.write_dsn,
            "--read-dsn",
            servers.read_dsn,
        )
        if stand_in_parent:  # a parent that starts the service, then waits to be killed
            command = [
                sys.executable,
                "-c",
                "import subprocess, sys, time; subprocess.Popen(sys.argv[1:]); time.sleep(600)",
                *command,
            ]
        with self.log.open("w") as out:
            self.proc = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, env=_env(home)
            )
        self.url = f"http://127.0.0.1:{self.port}"
        self.stand_in_parent = stand_in_parent

    def wait_serving(self) -> tuple[psutil.Process, list[psutil.Process]]:
        """Until both workers have started; the supervisor and its children (the workers and
        multiprocessing's resource tracker)."""
        deadline = time.monotonic() + PATIENCE
        while self.log.read_text().count("Application startup complete") < 2:
            assert self.proc.poll() is None, self.log.read_text()
            assert time.monotonic() < deadline, self.log.read_text()
            time.sleep(0.1)
        top = psutil.Process(self.proc.pid)
        supervisor = top.children()[0] if self.stand_in_parent else top
        return supervisor, supervisor.children(recursive=True)

    def stop(self) -> None:
        """Kill whatever of it still runs."""
        try:
            top = psutil.Process(self.proc.pid)
            processes = [top, *top.children(recursive=True)]
        except psutil.NoSuchProcess:
            processes = []
        for proc in processes:
            try:
                proc.kill()
            except psutil.NoSuchProcess:
                pass
        self.proc.wait(timeout=PATIENCE)


@pytest.fixture
def serve(servers: Servers, dataset_clone: str) -> Iterator:
    started: list[Served] = []
    home = CHECKOUT / ".work" / f"test-serve-workers-{os.getpid()}-{time.monotonic_ns()}"
    home.mkdir(parents=True)

    def start(stand_in_parent: bool = False) -> Served:
        served = Served(servers, dataset_clone, home, stand_in_parent=stand_in_parent)
        started.append(served)
        return served

    yield start
    for served in started:  # a test that failed half-way still leaves nothing running
        served.stop()
    shutil.rmtree(home, ignore_errors=True)


def _gone(processes: list[psutil.Process], timeout: float = PATIENCE) -> list[list[str]]:
    """Wait until none of `processes` runs (zombies do not); the command lines of those left."""
    deadline = time.monotonic() + timeout
    while True:
        left = []
        for p in processes:
            try:
                if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                    left.append(p.cmdline())
            except psutil.NoSuchProcess:
                pass
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.1)


def _answering_processes(url: str, tries: int = 200) -> set[int]:
    """The worker processes that answered GET /status, each on a new connection, until two
    have (or `tries` requests)."""
    seen: set[int] = set()
    for _ in range(tries):
        with httpx.Client(base_url=url, timeout=10) as client:  # a new connection each time
            seen.add(client.get("/status").json()["process"])
        if len(seen) == 2:
            break
    return seen


def test_two_workers_serve_one_database_and_sigterm_stops_them_all(serve, dataset_clone):
    served = serve()
    supervisor, children = served.wait_serving()
    workers = {p.pid for p in children if "spawn_main" in " ".join(p.cmdline())}
    assert len(workers) == 2, [p.cmdline() for p in children]

    answered = _answering_processes(served.url)
    assert answered == workers, f"answered by {answered}, workers {workers}"
    with psycopg.connect(dataset_clone) as conn:
        customer = conn.execute("SELECT min(id) FROM customers").fetchone()[0]
        product = conn.execute(
            "SELECT id FROM products WHERE status = 'active' ORDER BY stock DESC LIMIT 1"
        ).fetchone()[0]
    with httpx.Client(base_url=served.url, timeout=30) as client:
        placed = client.post(
            "/orders",
            json={"customer_id": customer, "lines": [{"product_id": product, "quantity": 1}]},
        )
        assert placed.status_code == 201, placed.text
    with psycopg.connect(dataset_clone) as conn:  # the run database the service was given
        assert (
            conn.execute(
                "SELECT count(*) FROM orders WHERE id = %s", (placed.json()["order_id"],)
            ).fetchone()[0]
            == 1
        )

    os.kill(supervisor.pid, signal.SIGTERM)  # as a service manager stops a service
    assert served.proc.wait(timeout=PATIENCE) == 0, served.log.read_text()
    assert not _gone([supervisor, *children]), served.log.read_text()


@pytest.mark.parametrize("killed", ["parent", "supervisor"])
def test_workers_outlive_neither_a_killed_parent_nor_a_killed_supervisor(serve, killed):
    """SIGKILL, so no handler runs: with its parent gone, `--exit-with-parent` stops the service
    and its workers; with the supervisor gone, each worker stops by itself."""
    served = serve(stand_in_parent=killed == "parent")
    supervisor, children = served.wait_serving()
    assert len(children) >= 2
    os.kill(served.proc.pid if killed == "parent" else supervisor.pid, signal.SIGKILL)
    assert not _gone([supervisor, *children], timeout=30), served.log.read_text()


def test_the_workers_socket_is_tcp_so_their_connections_get_nodelay():
    """uvicorn binds the socket its workers share with protocol 0, so asyncio would leave
    Nagle's algorithm on for every connection (about 40 ms per keep-alive request behind the
    client's delayed ACK); TcpConfig's socket says IPPROTO_TCP, and accepted connections then
    have TCP_NODELAY as in a single process."""
    sock = TcpConfig(
        "harness.deploy.service:worker_app", host="127.0.0.1", port=0, workers=2
    ).bind_socket()
    assert sock.proto == socket.IPPROTO_TCP

    async def nodelay_of_an_accepted_connection() -> int:
        accepted: asyncio.Future = asyncio.get_running_loop().create_future()

        class Probe(asyncio.Protocol):
            def connection_made(self, transport) -> None:
                conn = transport.get_extra_info("socket")
                accepted.set_result(conn.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY))
                transport.close()

        server = await asyncio.get_running_loop().create_server(Probe, sock=sock)
        _reader, writer = await asyncio.open_connection(*sock.getsockname()[:2])
        try:
            return await asyncio.wait_for(accepted, 10)
        finally:
            writer.close()
            server.close()

    assert asyncio.run(nodelay_of_an_accepted_connection()) == 1
