"""The projector as its own process (`cqrs-bench project run`), as it runs in production."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from harness.postgres.servers import work_dir


class ProjectorProcess:
    def __init__(self, impl: str, write_dsn: str, read_dsn: str, log_name: str) -> None:
        self.command = [
            sys.executable,
            "-m",
            "harness",
            "project",
            "run",
            "--impl",
            impl,
            "--write-dsn",
            write_dsn,
            "--read-dsn",
            read_dsn,
            "--exit-with-parent",
        ]
        self.log = work_dir() / "logs" / f"{log_name}.log"
        self.proc: subprocess.Popen | None = None

    def start(self) -> ProjectorProcess:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                self.command, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        return self

    def check(self) -> None:
        """Raise if the projector has died (naming its log)."""
        if self.proc is not None and self.proc.poll() is not None:
            raise RuntimeError(f"the projector exited with {self.proc.returncode}; see {self.log}")

    def stop(self, timeout: float = 20) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    @property
    def log_path(self) -> Path:
        return self.log
