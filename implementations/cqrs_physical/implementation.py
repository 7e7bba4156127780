"""Wires cqrs-physical: commands on the write server, queries on the read server, and a projector
(run by the harness) reading one and applying to the other."""

from __future__ import annotations

from implementations.cqrs_physical.commands import command_side
from implementations.cqrs_physical.queries import query_side
from implementations.db import make_engine
from implementations.interface import Config
from implementations.lifecycle import PooledImplementation
from implementations.projector import engine as projector


class CqrsPhysical(PooledImplementation):
    name = "cqrs-physical"
    needs_projector = True
    separate_read_server = True  # the harness creates the read database on the read server

    def install(self) -> None:
        projector.install(self.config.write_dsn, self.config.read_dsn)

    def start(self) -> None:
        size = self.config.pool_size
        self.engines = [
            make_engine(
                self.config.write_dsn,
                component="cqrs-physical:commands",
                pool_size=size,
                generic_plans=True,
            ),
            make_engine(self.config.read_dsn, component="cqrs-physical:queries", pool_size=size),
        ]
        self.commands = command_side(self.engines[0])
        self.queries = query_side(self.engines[1], self.config.read_your_writes_timeout)

    @property
    def projection_dsns(self) -> tuple[str, str]:
        """(outbox database on the write server, read-model database on the read server)."""
        return self.config.write_dsn, self.config.read_dsn


def create(config: Config) -> CqrsPhysical:
    return CqrsPhysical(config)
