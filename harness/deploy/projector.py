"""The projector as a process of its own (`cqrs-bench project run`), as it runs in production: the
one way the harness starts a projector (the runner, `serve` on a fresh clone, the lag benchmarks).

It starts on an implementation's databases, writes its output to its log, optionally records
every applied batch for the lag per source commit (`--record-lag`, read with
`collectors.lag.read_batches`), and exits with the process that started it.
"""

from __future__ import annotations

import inspect
from pathlib import Path

import psycopg

from harness.deploy.components import (
    EXIT_WITH_PARENT,
    Component,
    ComponentFailed,
    dsn_env,
    harness_command,
)
from implementations import registry
from implementations.domain.errors import Unavailable
from implementations.interface import Config, Projection
from implementations.projector.engine import Projector

_ENGINE = inspect.signature(Projector).parameters
BATCH_SIZE: int = _ENGINE["batch_size"].default  # the engine's own defaults, `project run`'s too
POLL_INTERVAL: float = _ENGINE["poll_interval"].default
HISTORY_BATCH_SIZE = 5000  # replaying a dataset's history: larger batches, fewer round trips


def projection_on(impl: str, write_dsn: str, read_dsn: str) -> Projection:
    """`impl`'s projection on these databases; ValueError when it has none."""
    projection = registry.create(impl, Config(write_dsn, read_dsn)).projection
    if projection is None:
        raise ValueError(f"{impl} has no projection")
    return projection


def catch_up(projection: Projection, batch_size: int = HISTORY_BATCH_SIZE) -> int:
    """Apply whatever the outbox holds beyond the checkpoint, here and now; the events applied."""
    with projection.projector(batch_size=batch_size) as projector:
        return projector.catch_up()


class ProjectorProcess(Component):
    """`cqrs-bench project run` for `impl` on its databases (the DSNs its Config takes)."""

    def __init__(
        self,
        impl: str,
        write_dsn: str,
        read_dsn: str,
        log: Path,
        *,
        record_lag: Path | None = None,
        batch_size: int = BATCH_SIZE,
        poll_interval: float = POLL_INTERVAL,
    ) -> None:
        self.projection = projection_on(impl, write_dsn, read_dsn)
        command = harness_command(
            "project",
            "run",
            "--impl",
            impl,
            "--batch-size",
            str(batch_size),
            "--poll-interval",
            str(poll_interval),
            EXIT_WITH_PARENT,
            *(["--record-lag", str(record_lag)] if record_lag else []),
        )
        super().__init__("projector", command, log, env=dsn_env(write_dsn, read_dsn))

    def wait_active(self, timeout: float = 60) -> None:
        """Until a projector holds the projection's lock (it listens right after);
        ComponentFailed if this one exits first, its databases cannot be reached (the process
        would retry forever, as through an outage) or `timeout` passes."""

        def active() -> bool:
            try:
                return self.projection.status().projector_active
            except (Unavailable, psycopg.Error) as exc:
                self.check()
                why = str(exc).strip().splitlines()[0]
                raise ComponentFailed(self.name, self.log, f"cannot start: {why}") from exc

        self.wait_ready(active, timeout)
