"""pg_stat_statements per statement at run end: the `statements` table.

reset() at run start, read() at run end. The view exists only in databases where the extension
is created; it shows the statements of every database of the server, so reading it from the
admin DSN's database (normally `postgres`) is enough. On a server where pg_stat_statements is
not in shared_preload_libraries (an existing server given by DSN), nothing is created: reset()
and read() return a warning instead (and read() an empty frame).

Rows are per (database, queryid): the view's rows for different users and for top-level and
nested executions of the same statement are merged (calls, rows, times and blocks summed; mean,
min, max and the population standard deviation combined exactly).
"""

from __future__ import annotations

import time

import pandas as pd
import psycopg

from harness.collectors.activity import collector_connection
from harness.collectors.base import typed_frame

COLUMNS = {
    "server": "str",
    "database": "str",
    "queryid": "int64",
    "query": "str",
    "calls": "int64",
    "rows": "int64",
    "total_exec_ms": "float64",
    "mean_exec_ms": "float64",
    "min_exec_ms": "float64",
    "max_exec_ms": "float64",
    "stddev_exec_ms": "float64",
    "total_plan_ms": "float64",
    "shared_blks_hit": "int64",
    "shared_blks_read": "int64",
    "shared_blks_dirtied": "int64",
    "temp_blks_written": "int64",
    "blk_read_time_ms": "float64",
    "blk_write_time_ms": "float64",
    "wal_bytes": "float64",
}

# Population variance of the merged rows: sum(n_i * (s_i^2 + m_i^2)) / N - M^2.
READ = """
    SELECT d.datname, s.queryid, min(s.query), sum(s.calls)::bigint, sum(s.rows)::bigint,
           sum(s.total_exec_time)::float8,
           (sum(s.total_exec_time) / nullif(sum(s.calls), 0))::float8,
           min(s.min_exec_time)::float8, max(s.max_exec_time)::float8,
           sqrt(greatest(0,
               sum(s.calls * (s.stddev_exec_time ^ 2 + s.mean_exec_time ^ 2))
                   / nullif(sum(s.calls), 0)
               - (sum(s.total_exec_time) / nullif(sum(s.calls), 0)) ^ 2))::float8,
           sum(s.total_plan_time)::float8,
           sum(s.shared_blks_hit)::bigint, sum(s.shared_blks_read)::bigint,
           sum(s.shared_blks_dirtied)::bigint, sum(s.temp_blks_written)::bigint,
           sum(s.{read_time})::float8, sum(s.{write_time})::float8, sum(s.wal_bytes)::float8
    FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
    WHERE d.datname = ANY(%(databases)s) AND s.queryid IS NOT NULL
    GROUP BY d.datname, s.queryid
    ORDER BY d.datname, sum(s.total_exec_time) DESC
"""


def _unavailable(conn: psycopg.Connection) -> str | None:
    """Why pg_stat_statements cannot be read on this connection's server (None: it can; the
    extension is then created in this database if it was not)."""
    preload = conn.execute("SHOW shared_preload_libraries").fetchone()[0]
    if "pg_stat_statements" not in [lib.strip().strip('"') for lib in preload.split(",")]:
        return "pg_stat_statements is not in shared_preload_libraries on this server"
    if conn.execute("SELECT pg_is_in_recovery()").fetchone()[0]:
        return _replicated(conn)
    try:
        conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
    except psycopg.Error as e:
        return f"cannot create the pg_stat_statements extension: {e}".strip()
    return None


def _replicated(conn: psycopg.Connection, timeout: float = 10.0) -> str | None:
    """A standby cannot create the extension: it gets it from its primary (whose collector made
    it, first), once replayed. None when it is there within `timeout` s, else why not."""
    deadline = time.monotonic() + timeout
    while not conn.execute(
        "SELECT 1 FROM pg_extension WHERE extname = 'pg_stat_statements'"
    ).fetchone():
        if time.monotonic() > deadline:
            return "pg_stat_statements: no extension in this standby's database (create it on its primary)"
        time.sleep(0.05)
    return None


def reset(dsn: str) -> str | None:
    """Forget every statement's statistics on the server of `dsn`; a warning if not possible."""
    with collector_connection(dsn) as conn:
        if warning := _unavailable(conn):
            return warning
        try:
            conn.execute("SELECT pg_stat_statements_reset()")
        except psycopg.Error as e:
            return f"pg_stat_statements_reset failed: {e}".strip()
    return None


def read(dsn: str, server: str, databases: set[str]) -> tuple[pd.DataFrame, str | None]:
    """The `statements` frame of `databases` on the server of `dsn`, and a warning or None."""
    empty = typed_frame([], COLUMNS)
    with collector_connection(dsn) as conn:
        if warning := _unavailable(conn):
            return empty, warning
        columns = {
            name
            for (name,) in conn.execute(
                "SELECT attname FROM pg_attribute"
                " WHERE attrelid = 'pg_stat_statements'::regclass AND attnum > 0"
            )
        }
        # PostgreSQL 17 renamed blk_read_time / blk_write_time to shared_blk_*.
        prefix = "" if "blk_read_time" in columns else "shared_"
        query = READ.format(
            read_time=f"{prefix}blk_read_time", write_time=f"{prefix}blk_write_time"
        )
        try:
            rows = conn.execute(query, {"databases": sorted(databases)}).fetchall()
        except psycopg.Error as e:
            return empty, f"reading pg_stat_statements failed: {e}".strip()
    frame = pd.DataFrame([(server, *row) for row in rows], columns=list(COLUMNS))
    return typed_frame(frame, COLUMNS), None
