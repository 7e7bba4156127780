"""An architecture's projection: read models a projector fills from an event source (the outbox
by default), where they are and how far they have got. What the harness and the API use of a
projection, in one object."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from implementations.db import edge
from implementations.projector import engine, status
from implementations.projector.outbox_reader import OUTBOX
from implementations.projector.source import Source


@dataclass(frozen=True)
class OutboxProjection:
    source_dsn: str  # the database holding the events (the write model's)
    target_dsn: str  # the database holding the read models and the checkpoint
    name: str = engine.PROJECTION
    source: Source = OUTBOX  # the events' table, read through this

    @property
    def dsns(self) -> tuple[str, str]:
        return self.source_dsn, self.target_dsn

    def install(self) -> None:
        engine.install(self.source_dsn, self.target_dsn, self.name)

    def projector(self, **options) -> engine.Projector:
        """The projection engine on these databases (`batch_size`, `poll_interval`, ...)."""
        return engine.Projector(
            self.source_dsn, self.target_dsn, source=self.source, name=self.name, **options
        )

    def status(self) -> status.ProjectionStatus:
        """Where it stands; Unavailable when either database cannot be reached."""
        with edge():
            return status.projection_status(
                self.source_dsn, self.target_dsn, self.name, self.source
            )

    def wait_caught_up(
        self, timeout: float, alive: Callable[[], bool] = lambda: True
    ) -> float | None:
        """Seconds until the checkpoint covered the source's head as it is now; None after
        `timeout` or as soon as `alive()` says the projector is gone."""
        return status.wait_caught_up(
            self.source_dsn, self.target_dsn, timeout, alive, self.name, self.source
        )
