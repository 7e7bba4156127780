"""The API service as a process of its own (`cqrs-bench serve --database NAME`): the one way the
harness starts a service (the runner's http transport).

`serve --workers N` (N > 1) runs N worker processes behind one port, the usual uvicorn way: the
`serve` process binds the port and supervises (uvicorn's `workers`, its processes started with
multiprocessing's spawn), and each worker builds its own app with `worker_app`, an import-string
factory, from what `serve_workers` put in the environment: the same implementation on the same
run databases, with connection pools of its own. Workers stop with the supervisor (SIGTERM,
Ctrl-C, `--exit-with-parent`) and, should it be killed outright, by themselves within a second.
"""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sys
import urllib.request
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path

import uvicorn
from fastapi import FastAPI
from uvicorn.config import STARTUP_FAILURE
from uvicorn.supervisors import Multiprocess

from harness.deploy.components import (
    EXIT_WITH_PARENT,
    Component,
    harness_command,
    servers_env,
    watch_parent,
)
from harness.postgres.server import free_port
from harness.postgres.servers import Servers
from implementations import registry
from implementations.api import create_app
from implementations.interface import Config, Implementation

# What each worker process serves (JSON: implementation, side, its Config), set by serve_workers
# in the supervisor's environment, which the workers inherit (off the command line: DSNs).
WORKER_ENV = "CQRS_BENCH_SERVICE_WORKER"
# `run --service-workers` (and compose's CQRS_SERVICE_WORKERS) by default: on this 2-core machine
# one process tops out below a core, two matched or beat it (README: "The service tier")
SERVICE_WORKERS = 2
# uvicorn's supervisor takes these over; they are given back when it returns
SUPERVISOR_SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)


def healthy(url: str) -> bool:
    """Whether a service answers GET /health with 200."""
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


class TcpConfig(uvicorn.Config):
    """uvicorn's Config, its listening socket marked IPPROTO_TCP. uvicorn binds the socket it
    hands to its worker processes with protocol 0, which accepted connections inherit, and
    asyncio sets TCP_NODELAY only on sockets that say IPPROTO_TCP: Nagle's algorithm then holds
    a response's body behind its headers until the client's delayed ACK, about 40 ms (uvicorn
    issue 3149). Measured here: checkout-max over HTTP at ~145 checkouts/s, p50 ~52 ms, in 3 of
    9 runs with two workers (README: "The service tier")."""

    def bind_socket(self) -> socket.socket:
        sock = super().bind_socket()
        if sock.family not in (socket.AF_INET, socket.AF_INET6):
            return sock
        return socket.socket(sock.family, sock.type, socket.IPPROTO_TCP, fileno=sock.detach())


def serve_workers(
    impl: Implementation, side: str, host: str, port: int, workers: int, **uvicorn_options
) -> None:
    """Serve `impl` (its name and Config: the workers open their own pools) on host:port with
    `workers` worker processes, until SIGTERM or Ctrl-C; this process supervises them (what
    `uvicorn.run(..., workers=N)` does, with TcpConfig)."""
    os.environ[WORKER_ENV] = json.dumps(
        {
            "impl": impl.name,
            "side": side,
            "config": asdict(impl.config),
            "supervisor": os.getpid(),
        }
    )
    saved = {sig: signal.getsignal(sig) for sig in SUPERVISOR_SIGNALS}
    config = TcpConfig(
        f"{__name__}:worker_app",
        factory=True,
        workers=workers,
        host=host,
        port=port,
        **uvicorn_options,
    )
    try:
        Multiprocess(config, sockets=[config.bind_socket()]).run()
    finally:
        for sig, handler in saved.items():
            signal.signal(sig, handler)
        os.environ.pop(WORKER_ENV, None)


def worker_app() -> FastAPI:
    """The app of one worker process (uvicorn calls it in the worker): the implementation named
    in WORKER_ENV, started here and stopped with the app. A worker that cannot start exits with
    uvicorn's startup-failure status, which stops the supervisor instead of restarting it."""
    what = json.loads(os.environ[WORKER_ENV])

    def stop() -> None:
        os.kill(os.getpid(), signal.SIGTERM)

    # The supervisor killed outright (SIGKILL) leaves no orphan: the worker stops as on SIGTERM,
    # also when that happened while it was starting (its parent is then no longer the supervisor).
    watch_parent(stop)
    if os.getppid() != what["supervisor"]:
        stop()
    try:
        impl = registry.create(what["impl"], Config(**what["config"]))
        impl.start()
    except Exception as exc:  # noqa: BLE001 - any cause: one line in the log, then stop
        logging.getLogger("uvicorn.error").error("service worker could not start: %s", exc)
        sys.exit(STARTUP_FAILURE)
    return create_app(impl, what["side"], owned=True)


class ServiceProcess(Component):
    """`cqrs-bench serve` for `impl` (with these of its settings) on the run database `database`
    of these servers, on a free port of 127.0.0.1 (its address: `url`), with `workers` worker
    processes."""

    def __init__(
        self,
        impl: str,
        servers: Servers,
        database: str,
        log: Path,
        retries: int,
        workers: int,
        settings: Mapping[str, int],
    ) -> None:
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        command = harness_command(
            "serve",
            "--impl",
            impl,
            "--database",
            database,
            "--port",
            str(port),
            "--retries",
            str(retries),
            "--workers",
            str(workers),
            *(arg for key, value in settings.items() for arg in ("--set", f"{impl}.{key}={value}")),
            EXIT_WITH_PARENT,
        )
        super().__init__("service", command, log, env=servers_env(servers))

    def wait_healthy(self, timeout: float = 60) -> None:
        """Until it answers /health; ComponentFailed if it exits first or `timeout` passes."""
        self.wait_ready(lambda: healthy(self.url), timeout)
