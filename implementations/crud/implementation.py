"""Wires the crud command side and query side to one database."""

from __future__ import annotations

from implementations.interface import Config
from implementations.lifecycle import PooledImplementation

from .commands import command_side
from .queries import CrudQueries


class Crud(PooledImplementation):
    def install(self) -> None:
        self.install_schema_sql(__package__)

    def start(self) -> None:
        commands, queries = self.open_engines(self.config.write_dsn)
        self.commands = command_side(commands)
        self.queries = CrudQueries(queries)


def create(name: str, config: Config) -> Crud:
    return Crud(name, config)
