"""A sampler that runs one query on each of several servers' databases per round, on one
persistent collector connection each, and keeps the rows it returns (the `horizon` and
`table_stats` tables are made this way)."""

from __future__ import annotations

from typing import Any

import pandas as pd
import psycopg

from harness.collectors.activity import collector_connection
from harness.collectors.base import Sampler, typed_frame


class ServerPoller(Sampler):
    """Every `interval` seconds, `QUERY` on each database of `databases` (role -> DSN of the
    run's database there; a DSN given twice is polled once, under the first role).

    Subclasses set `name`, `QUERY` and `COLUMNS` and turn one result row into a frame row with
    `_row(role, row)` (a tuple in COLUMNS order).
    """

    QUERY: str = ""
    COLUMNS: dict[str, str] = {}

    def __init__(self, databases: dict[str, str], interval: float) -> None:
        super().__init__(interval)
        seen: dict[str, str] = {}
        for role, dsn in databases.items():
            seen.setdefault(dsn, role)
        self.databases = {role: dsn for dsn, role in seen.items()}
        self._conns: dict[str, psycopg.Connection] = {}
        self._rows: list[tuple] = []

    def _open(self) -> None:
        try:
            for role, dsn in self.databases.items():
                self._conns[role] = collector_connection(dsn)
        except Exception:
            self._close()
            raise

    def _close(self) -> None:
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()

    def _row(self, role: str, row: tuple[Any, ...]) -> tuple:
        raise NotImplementedError

    def _sample(self) -> None:
        for role, conn in self._conns.items():
            batch = [self._row(role, row) for row in conn.execute(self.QUERY).fetchall()]
            with self._lock:
                self._rows.extend(batch)

    def frame(self) -> pd.DataFrame:
        with self._lock:
            rows = list(self._rows)
        return typed_frame(pd.DataFrame(rows, columns=list(self.COLUMNS)), self.COLUMNS)
