"""Wires the crud command side and query side to one database."""

from __future__ import annotations

from importlib.resources import files

from sqlalchemy import Engine

from implementations.crud.commands import CrudCommands
from implementations.crud.queries import CrudQueries
from implementations.db import make_engine
from implementations.interface import Config


class Crud:
    name = "crud"

    def __init__(self, config: Config) -> None:
        self.config = config
        self.engine: Engine | None = None

    def install(self) -> None:
        engine = make_engine(self.config.write_dsn, component="crud-install", pool_size=1)
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql(files(__package__).joinpath("schema.sql").read_text())
        finally:
            engine.dispose()

    def start(self) -> None:
        self.engine = make_engine(
            self.config.write_dsn, component="crud", pool_size=self.config.pool_size
        )
        self.commands = CrudCommands(self.engine)
        self.queries = CrudQueries(self.engine)

    def stop(self) -> None:
        if self.engine is not None:
            self.engine.dispose()
            self.engine = None


def create(config: Config) -> Crud:
    return Crud(config)
