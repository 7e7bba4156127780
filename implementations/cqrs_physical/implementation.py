"""Wires cqrs-physical: commands on the write server, queries on the read server, and a projector
(run by the harness) reading one and applying to the other."""

from __future__ import annotations

from implementations.interface import Config
from implementations.lifecycle import PooledImplementation
from implementations.projector.projection import OutboxProjection

from .commands import command_side
from .queries import query_side


class CqrsPhysical(PooledImplementation):
    def __init__(self, name: str, config: Config) -> None:
        super().__init__(name, config)
        # the outbox on the write server, the read models on the read server
        self.projection = OutboxProjection(config.write_dsn, config.read_dsn)

    def install(self) -> None:
        self.projection.install()

    def start(self) -> None:
        commands, queries = self.open_engines(self.config.read_dsn)
        self.commands = command_side(commands)
        self.queries = query_side(queries, self.config.read_your_writes_timeout)


def create(name: str, config: Config) -> CqrsPhysical:
    return CqrsPhysical(name, config)
