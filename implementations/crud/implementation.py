"""Wires the crud command side and query side to one database."""

from __future__ import annotations

from importlib.resources import files

from implementations.crud.commands import command_side
from implementations.crud.queries import CrudQueries
from implementations.db import make_engine
from implementations.interface import Config
from implementations.lifecycle import PooledImplementation


class Crud(PooledImplementation):
    name = "crud"

    def install(self) -> None:
        engine = make_engine(self.config.write_dsn, component="crud-install", pool_size=1)
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql(files(__package__).joinpath("schema.sql").read_text())
        finally:
            engine.dispose()

    def start(self) -> None:
        size = self.config.pool_size
        self.engines = [
            make_engine(
                self.config.write_dsn, component="crud:commands", pool_size=size, generic_plans=True
            ),
            make_engine(self.config.write_dsn, component="crud:queries", pool_size=size),
        ]
        self.commands = command_side(self.engines[0])
        self.queries = CrudQueries(self.engines[1])


def create(config: Config) -> Crud:
    return Crud(config)
