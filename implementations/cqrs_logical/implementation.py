"""Wires cqrs-logical: commands on the write model with an outbox; queries on read models that a
projector (a separate process or thread, started by the harness) keeps up to date."""

from __future__ import annotations

from implementations.cqrs_logical.commands import command_side
from implementations.cqrs_logical.queries import query_side
from implementations.db import make_engine
from implementations.interface import Config
from implementations.lifecycle import PooledImplementation
from implementations.projector import engine as projector


class CqrsLogical(PooledImplementation):
    name = "cqrs-logical"
    needs_projector = True

    def install(self) -> None:
        projector.install(self.config.write_dsn, self.config.write_dsn)

    def start(self) -> None:
        size, dsn = self.config.pool_size, self.config.write_dsn
        self.engines = [
            make_engine(dsn, component="cqrs-logical:commands", pool_size=size, generic_plans=True),
            make_engine(dsn, component="cqrs-logical:queries", pool_size=size),
        ]
        self.commands = command_side(self.engines[0])
        self.queries = query_side(self.engines[1], self.config.read_your_writes_timeout)

    @property
    def projection_dsns(self) -> tuple[str, str]:
        """(outbox database, read-model database) for the projector."""
        return self.config.write_dsn, self.config.write_dsn


def create(config: Config) -> CqrsLogical:
    return CqrsLogical(config)
