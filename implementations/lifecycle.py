"""Lifecycle shared by implementations: the engines `start()` opens, `stop()` closes."""

from __future__ import annotations

from sqlalchemy import Engine

from implementations.interface import Config


class PooledImplementation:
    needs_projector = False
    separate_read_server = False

    def __init__(self, config: Config) -> None:
        self.config = config
        self.engines: list[Engine] = []

    def stop(self) -> None:
        for engine in self.engines:
            engine.dispose()
        self.engines = []
