"""Per-run deltas of PostgreSQL's cumulative counters: the `db_stats` table.

snapshot() before and after a run, deltas() between them. Counters come from pg_stat_database
and pg_stat_database_conflicts (the run's database: queries a hot standby cancelled for replay,
by cause; zero on a primary), pg_stat_bgwriter (server-wide; pg_stat_checkpointer on PostgreSQL 17+) and
the WAL position (server-wide: wal_bytes is the position in bytes, so its delta is the WAL written).

Backends report their counters at transaction end at most once a second (PostgreSQL 15+), and an
idle backend within about a second: take the `after` snapshot a second or more after the load
stopped, or after its connections closed, or the last second of the run is partly missing.
PostgreSQL 15 has no serialization-failure counter; those come from the server log (server_log).
"""

from __future__ import annotations

import math

import pandas as pd

from harness.collectors.activity import collector_connection
from harness.collectors.base import typed_frame

DATABASE_STATS = (
    "xact_commit",
    "xact_rollback",
    "deadlocks",
    "conflicts",
    "blks_read",
    "blks_hit",
    "tup_returned",
    "tup_fetched",
    "tup_inserted",
    "tup_updated",
    "tup_deleted",
    "temp_files",
    "temp_bytes",
    "blk_read_time",
    "blk_write_time",
    "session_time",
    "active_time",
    "idle_in_transaction_time",
    "sessions",
)
# queries a standby cancelled because replay conflicted with them, by cause
CONFLICT_STATS = (
    "confl_tablespace",
    "confl_lock",
    "confl_snapshot",
    "confl_bufferpin",
    "confl_deadlock",
)
SERVER_STATS = (
    "buffers_checkpoint",
    "buffers_backend",
    "checkpoints_timed",
    "checkpoints_req",
    "wal_bytes",
)
# PostgreSQL 17 moved the checkpoint counters to pg_stat_checkpointer (and buffers_backend to
# pg_stat_io, not read here: NaN there).
CHECKPOINTER_NAMES = {
    "buffers_checkpoint": "buffers_written",
    "checkpoints_timed": "num_timed",
    "checkpoints_req": "num_requested",
}
WAL_POSITION = """
    SELECT pg_wal_lsn_diff(CASE WHEN pg_is_in_recovery() THEN pg_last_wal_replay_lsn()
                                ELSE pg_current_wal_lsn() END, '0/0')
"""
COLUMNS = {
    "server": "str",
    "database": "str",
    "stat": "str",
    "before": "float64",
    "after": "float64",
    "delta": "float64",
}


def _number(value) -> float:
    return math.nan if value is None else float(value)


def snapshot(dsn: str, database: str | None = None) -> dict[str, float]:
    """The counters of `database` and of its server now, as floats (NaN where not available).

    `dsn` is any DSN of the server; `database` defaults to the DSN's own database.
    """
    with collector_connection(dsn) as conn:
        database = database or conn.info.dbname
        conn.execute("SELECT pg_stat_clear_snapshot()")  # no cached values: current counters
        row = conn.execute(
            "SELECT to_jsonb(d) FROM pg_stat_database d WHERE datname = %s", (database,)
        ).fetchone()
        if row is None:
            raise ValueError(f"no database {database!r} in pg_stat_database")
        stats = {name: _number(row[0].get(name)) for name in DATABASE_STATS}
        conflicts = conn.execute(
            "SELECT to_jsonb(c) FROM pg_stat_database_conflicts c WHERE datname = %s", (database,)
        ).fetchone()
        stats.update({name: _number((conflicts or [{}])[0].get(name)) for name in CONFLICT_STATS})
        bgwriter = conn.execute("SELECT to_jsonb(b) FROM pg_stat_bgwriter b").fetchone()[0]
        if conn.info.server_version >= 170000:
            cp = conn.execute("SELECT to_jsonb(c) FROM pg_stat_checkpointer c").fetchone()[0]
            bgwriter = {**bgwriter, **{old: cp.get(new) for old, new in CHECKPOINTER_NAMES.items()}}
        stats.update({name: _number(bgwriter.get(name)) for name in SERVER_STATS[:-1]})
        stats["wal_bytes"] = float(conn.execute(WAL_POSITION).fetchone()[0])
    return stats


def deltas(
    before: dict[str, float], after: dict[str, float], server: str, database: str
) -> pd.DataFrame:
    """The `db_stats` frame: one row per counter in either snapshot, delta = after - before."""
    rows = []
    for stat in [*before, *(k for k in after if k not in before)]:
        b, a = _number(before.get(stat)), _number(after.get(stat))
        rows.append(
            {
                "server": server,
                "database": database,
                "stat": stat,
                "before": b,
                "after": a,
                "delta": a - b,
            }
        )
    return typed_frame(rows, COLUMNS)
