"""Wires crud-matview: crud's commands and indexes on one database; dashboards on materialized
views that a refresher (a process the harness starts, `cqrs-bench refresh run`) refreshes."""

from __future__ import annotations

from implementations.interface import Config
from implementations.lifecycle import PooledImplementation

from .commands import command_side
from .queries import MatviewQueries
from .refresher import MatviewRefresher


class CrudMatview(PooledImplementation):
    def __init__(self, name: str, config: Config) -> None:
        super().__init__(name, config)
        self.refresher = MatviewRefresher(config.write_dsn, component="refresher")

    def install(self) -> None:
        self.install_schema(__package__)

    def start(self) -> None:
        commands, queries = self.open_engines(self.config.write_dsn)
        self.commands = command_side(commands)
        self.queries = MatviewQueries(queries)

    def stop(self) -> None:
        super().stop()
        self.refresher.close()


def create(name: str, config: Config) -> CrudMatview:
    return CrudMatview(name, config)
