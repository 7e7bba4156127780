"""Lifecycle shared by implementations: the engines `start()` opens, `stop()` closes."""

from __future__ import annotations

from importlib.resources import files

from sqlalchemy import Engine

from implementations.db import SERIALIZABLE, Session, make_engine
from implementations.interface import Config, History, Projection, Refresher


class PooledImplementation:
    projection: Projection | None = None
    refresher: Refresher | None = None
    history: History | None = None
    query_ceiling = SERIALIZABLE  # the strongest isolation its query side's server offers

    def __init__(self, name: str, config: Config) -> None:
        self.name, self.config = name, config
        self.engines: list[Engine] = []

    def install_schema(self, package: str) -> None:
        """Run the `schema.sql` of `package` (the architecture's folder) on the write database."""
        engine = make_engine(self.config.write_dsn, component=f"{self.name}-install", pool_size=1)
        try:
            with engine.begin() as conn:
                conn.exec_driver_sql(files(package).joinpath("schema.sql").read_text())
        finally:
            engine.dispose()

    def open_engines(self, queries_dsn: str) -> tuple[Engine, Engine]:
        """The command side's engine on the write database (generic plans: see make_engine) and
        the query side's on `queries_dsn`, each with the configured pool size, named after this
        implementation; `stop()` closes them."""
        size = self.config.pool_size
        self.engines = [
            make_engine(
                self.config.write_dsn,
                component=f"{self.name}:commands",
                pool_size=size,
                generic_plans=True,
            ),
            make_engine(queries_dsn, component=f"{self.name}:queries", pool_size=size),
        ]
        return self.engines[0], self.engines[1]

    def session(
        self, isolation: str = "read committed", *, report: bool = False, role: str | None = None
    ) -> Session:
        return Session(
            isolation,
            report=report,
            role=role,
            retries=self.config.retries,
            query_ceiling=self.query_ceiling,
        )

    def settings(self) -> dict[str, object]:
        """What it runs with (run.json: impls.<impl>.settings): its architecture's settings
        (Config.settings, defaults filled in)."""
        return dict(self.config.settings)

    def stop(self) -> None:
        for engine in self.engines:
            engine.dispose()
        self.engines = []
