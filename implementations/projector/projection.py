"""An architecture's projection: read models a projector fills from the outbox, where they are
and how far they have got. What the harness and the API use of a projection, in one object."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from implementations.db import edge
from implementations.projector import engine, status


@dataclass(frozen=True)
class OutboxProjection:
    source_dsn: str  # the database holding the outbox (the write model's)
    target_dsn: str  # the database holding the read models and the checkpoint
    name: str = engine.PROJECTION

    @property
    def dsns(self) -> tuple[str, str]:
        return self.source_dsn, self.target_dsn

    def install(self) -> None:
        engine.install(self.source_dsn, self.target_dsn, self.name)

    def projector(self, **options) -> engine.Projector:
        """The projection engine on these databases (`batch_size`, `poll_interval`, ...)."""
        return engine.Projector(self.source_dsn, self.target_dsn, name=self.name, **options)

    def status(self) -> status.ProjectionStatus:
        """Where it stands; Unavailable when either database cannot be reached."""
        with edge():
            return status.projection_status(self.source_dsn, self.target_dsn, self.name)

    def wait_caught_up(
        self, timeout: float, alive: Callable[[], bool] = lambda: True
    ) -> float | None:
        """Seconds until the checkpoint covered the outbox head as it is now; None after
        `timeout` or as soon as `alive()` says the projector is gone."""
        return status.wait_caught_up(self.source_dsn, self.target_dsn, timeout, alive, self.name)
