"""Wires cqrs-logical: commands on the write model with an outbox; queries on read models that a
projector (a separate process or thread, started by the harness) keeps up to date."""

from __future__ import annotations

from implementations.interface import Config
from implementations.lifecycle import PooledImplementation
from implementations.projector.projection import OutboxProjection

from .commands import command_side
from .queries import query_side


class CqrsLogical(PooledImplementation):
    def __init__(self, name: str, config: Config) -> None:
        super().__init__(name, config)
        # the outbox and the read models, both in the one database
        self.projection = OutboxProjection(config.write_dsn, config.write_dsn)

    def install(self) -> None:
        self.projection.install()

    def start(self) -> None:
        commands, queries = self.open_engines(self.config.write_dsn)
        self.commands = command_side(commands)
        self.queries = query_side(queries, self.config.read_your_writes_timeout)


def create(name: str, config: Config) -> CqrsLogical:
    return CqrsLogical(name, config)
