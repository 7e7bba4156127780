"""A sampler that runs one query on each of several servers' databases per round, on one
persistent collector connection each, and keeps the rows it returns (the `horizon` and
`table_stats` tables are made this way)."""

from __future__ import annotations

from typing import Any

import pandas as pd

from harness.collectors.activity import PerServer
from harness.collectors.base import typed_frame


class ServerPoller(PerServer):
    """Every `interval` seconds, `QUERY` on each database of `databases` (role -> DSN of the
    run's database there; a DSN given twice is polled once, under the first role).

    Subclasses set `name`, `QUERY` and `COLUMNS` and turn one result row into a frame row with
    `_row(role, row)` (a tuple in COLUMNS order).
    """

    QUERY: str = ""
    COLUMNS: dict[str, str] = {}

    def __init__(self, databases: dict[str, str], interval: float) -> None:
        super().__init__(databases, interval)
        self._rows: list[tuple] = []

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
