"""Wires cqrs-sync: commands that update the write model and the read models in one transaction,
queries on the read models, all in one database."""

from __future__ import annotations

from implementations.interface import Config
from implementations.lifecycle import PooledImplementation
from implementations.projector.projection import OutboxProjection

from .commands import command_side
from .queries import query_side

HISTORY_BATCH = 5000  # events per transaction when the dataset's history is loaded


class CqrsSync(PooledImplementation):
    def install(self) -> None:
        """The read models, filled once from the dataset's history in the outbox by the projection
        engine (the same apply code); from then on every command applies its own events."""
        history = OutboxProjection(self.config.write_dsn, self.config.write_dsn)
        history.install()
        with history.projector(batch_size=HISTORY_BATCH) as projector:
            projector.catch_up()

    def start(self) -> None:
        commands, queries = self.open_engines(self.config.write_dsn)
        self.commands = command_side(commands)
        self.queries = query_side(queries)


def create(name: str, config: Config) -> CqrsSync:
    return CqrsSync(name, config)
