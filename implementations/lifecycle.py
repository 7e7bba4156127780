"""Lifecycle shared by implementations: the engines `start()` opens, `stop()` closes."""

from __future__ import annotations

from sqlalchemy import Engine

from implementations.interface import Config, Projection


class PooledImplementation:
    projection: Projection | None = None

    def __init__(self, name: str, config: Config) -> None:
        self.name, self.config = name, config
        self.engines: list[Engine] = []

    def stop(self) -> None:
        for engine in self.engines:
            engine.dispose()
        self.engines = []
