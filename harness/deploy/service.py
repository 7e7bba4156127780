"""The API service as a process of its own (`cqrs-bench serve --database NAME`): the one way the
harness starts a service (the runner's http transport)."""

from __future__ import annotations

import urllib.request
from pathlib import Path

from harness.deploy.components import (
    EXIT_WITH_PARENT,
    Component,
    harness_command,
    servers_env,
)
from harness.postgres.server import free_port
from harness.postgres.servers import Servers


def healthy(url: str) -> bool:
    """Whether a service answers GET /health with 200."""
    try:
        with urllib.request.urlopen(f"{url}/health", timeout=1) as response:
            return response.status == 200
    except OSError:
        return False


class ServiceProcess(Component):
    """`cqrs-bench serve` for `impl` on the run database `database` of these servers, on a free
    port of 127.0.0.1 (its address: `url`)."""

    def __init__(self, impl: str, servers: Servers, database: str, log: Path, retries: int) -> None:
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
            EXIT_WITH_PARENT,
        )
        super().__init__("service", command, log, env=servers_env(servers))

    def wait_healthy(self, timeout: float = 60) -> None:
        """Until it answers /health; ComponentFailed if it exits first or `timeout` passes."""
        self.wait_ready(lambda: healthy(self.url), timeout)
