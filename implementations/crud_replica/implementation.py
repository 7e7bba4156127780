"""Wires crud-replica: commands on the primary (config.write_dsn), queries on a hot standby of it
(config.read_dsn: the same database there, by physical replication)."""

from __future__ import annotations

from implementations.db import REPEATABLE_READ
from implementations.interface import Config
from implementations.lifecycle import PooledImplementation

from .commands import command_side
from .queries import query_side


class CrudReplica(PooledImplementation):
    # a hot standby refuses SERIALIZABLE ("cannot use serializable mode in a hot standby"): its
    # queries asked for it run at REPEATABLE READ, the strongest it offers
    query_ceiling = REPEATABLE_READ

    def install(self) -> None:
        # crud's indexes, on the primary: the standby is a physical copy, so it has them too
        self.install_schema(__package__)

    def start(self) -> None:
        commands, queries = self.open_engines(self.config.read_dsn)
        self.commands = command_side(commands)
        self.queries = query_side(queries, self.config.read_your_writes_timeout)


def create(name: str, config: Config) -> CrudReplica:
    return CrudReplica(name, config)
