"""Table statistics over time (DESIGN section 6): the `table_stats` table.

Every few seconds, per table of the public schema of each run database: live and dead tuples,
updates and HOT updates (cumulative), vacuums, and the size of the table and of its indexes.
The statistics are those the server has flushed: a backend reports its counts at the end of a
transaction, at most about once a second.
"""

from __future__ import annotations

from harness.collectors.base import TS
from harness.collectors.server_poll import ServerPoller

INTERVAL_S = 2.0

COLUMNS = {
    "ts": TS,
    "server": "str",
    "database": "str",
    "relation": "str",
    "live_tuples": "int64",
    "dead_tuples": "int64",
    "updates": "int64",
    "hot_updates": "int64",
    "vacuums": "int64",
    "table_bytes": "int64",
    "index_bytes": "int64",
}

QUERY = """
    SELECT now(), current_database(), relname, n_live_tup, n_dead_tup, n_tup_upd, n_tup_hot_upd,
           vacuum_count + autovacuum_count, pg_relation_size(relid), pg_indexes_size(relid)
    FROM pg_stat_user_tables
    WHERE schemaname = 'public'
    ORDER BY relname
"""


class TableStatsSampler(ServerPoller):
    """Polls pg_stat_user_tables (and relation sizes) of each run database (role -> DSN)."""

    name = "table_stats"
    QUERY = QUERY
    COLUMNS = COLUMNS

    def __init__(self, databases: dict[str, str], interval: float = INTERVAL_S) -> None:
        super().__init__(databases, interval)

    def _row(self, role: str, row: tuple) -> tuple:
        return (row[0], role, *row[1:])
