"""Wires the crud command side and query side to one database."""

from __future__ import annotations

from importlib.resources import files

from implementations.db import make_engine
from implementations.interface import Config
from implementations.lifecycle import PooledImplementation

from .commands import command_side
from .queries import CrudQueries


class Crud(PooledImplementation):
    def install(self) -> None:
        engine = make_engine(self.config.write_dsn, component=f"{self.name}-install", pool_size=1)
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql(files(__package__).joinpath("schema.sql").read_text())
        finally:
            engine.dispose()

    def start(self) -> None:
        commands, queries = self.open_engines(self.config.write_dsn)
        self.commands = command_side(commands)
        self.queries = CrudQueries(queries)


def create(name: str, config: Config) -> Crud:
    return Crud(name, config)
