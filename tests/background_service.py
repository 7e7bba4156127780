"""Running the HTTP API inside the test process (a thread), for tests that drive it themselves."""

from __future__ import annotations

import threading
import time

import uvicorn

from harness.postgres.server import ServerError, free_port
from implementations.api import create_app
from implementations.interface import Implementation


class BackgroundService:
    """The API on a free local port in a thread, for the duration of a `with` block."""

    def __init__(self, implementation: Implementation) -> None:
        config = uvicorn.Config(
            create_app(implementation), host="127.0.0.1", port=free_port(), log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, name="api", daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        while not self.server.started:
            if not self.thread.is_alive():
                raise ServerError("the API service failed to start")
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.server.config.port}"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
