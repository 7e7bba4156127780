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
        size = self.config.pool_size
        self.engines = [
            make_engine(
                self.config.write_dsn,
                component=f"{self.name}:commands",
                pool_size=size,
                generic_plans=True,
            ),
            make_engine(self.config.write_dsn, component=f"{self.name}:queries", pool_size=size),
        ]
        self.commands = command_side(self.engines[0])
        self.queries = CrudQueries(self.engines[1])


def create(name: str, config: Config) -> Crud:
    return Crud(name, config)
