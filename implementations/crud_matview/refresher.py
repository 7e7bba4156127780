"""The refresher: `REFRESH MATERIALIZED VIEW CONCURRENTLY` of each view, one after another, each in
its own transaction, timed, with the CPU time of the server backend that did it.

Each refresh also records in `matview_refreshes` (same transaction) the start of its transaction,
the time its data is current as of. Its session is named `cqrs-bench:<component>`, so the waits
sampler attributes its lock waits (a concurrent refresh takes an EXCLUSIVE lock on its view:
readers go on, a second refresh of the same view waits).
"""

from __future__ import annotations

import os
import threading
import time

import psycopg
from psycopg import sql

from implementations.interface import Refreshed

# the views, in the order a refresh takes them, and the query-side method that reads each
READS = {
    "sales_by_category": "mv_category_sales_minute",
    "top_products": "mv_product_sales_minute",
    "revenue_over_time": "mv_revenue_minute",
}
VIEWS = tuple(READS.values())
RECORD = """
    INSERT INTO matview_refreshes (view, as_of, refreshed_at) VALUES (%s, now(), clock_timestamp())
    ON CONFLICT (view) DO UPDATE SET as_of = excluded.as_of, refreshed_at = excluded.refreshed_at
"""
_TICK = os.sysconf("SC_CLK_TCK")


def backend_cpu(pid: int) -> float | None:
    """User + system CPU seconds of the local process `pid` (a server backend); None when it is
    not on this machine or not readable."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
    except OSError:
        return None
    return (int(fields[11]) + int(fields[12])) / _TICK  # utime, stime


class MatviewRefresher:
    reads = READS

    def __init__(self, dsn: str, component: str) -> None:
        self.dsn, self.component = dsn, component
        self._conn: psycopg.Connection | None = None
        self._lock = threading.Lock()  # one refresh at a time on the one connection

    def _connection(self) -> psycopg.Connection:
        if self._conn is None or self._conn.closed:
            self._conn = psycopg.connect(
                self.dsn,
                autocommit=True,
                application_name=f"cqrs-bench:{self.component}",
                options="-c TimeZone=UTC",
            )
        return self._conn

    def refresh(self) -> list[Refreshed]:
        return [self.refresh_view(view) for view in VIEWS]

    def refresh_view(self, view: str) -> Refreshed:
        with self._lock:
            conn = self._connection()
            pid = conn.info.backend_pid
            cpu = backend_cpu(pid)
            started = (
                time.time()
            )  # before the transaction's snapshot: its data is at least this new
            with conn.transaction():
                conn.execute(
                    sql.SQL("REFRESH MATERIALIZED VIEW CONCURRENTLY {}").format(
                        sql.Identifier(view)
                    )
                )
                conn.execute(RECORD, (view,))
            ended = time.time()  # after the commit: queries started later read the new data
            after = backend_cpu(pid)
        used = None if cpu is None or after is None else after - cpu
        return Refreshed(view, started, ended, used)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None
