"""A streaming standby of the write server, seen from the harness: wait until it has replayed what
the primary wrote (the explicit wait before verification and before measuring), and set or read
its `hot_standby_feedback`."""

from __future__ import annotations

import time
from collections.abc import Callable

import psycopg

APP = "cqrs-bench:runner"
POLL = 0.01  # seconds between looks at the standby's replay position
PROGRESS_EVERY = 10.0  # seconds between progress lines of a long wait


class StandbyBehind(RuntimeError):
    """The standby did not replay the primary's position in time."""


def _connect(dsn: str) -> psycopg.Connection:
    return psycopg.connect(dsn, autocommit=True, application_name=APP, connect_timeout=10)


def primary_position(primary_dsn: str) -> str:
    """The primary's WAL insert position now: everything committed so far lies before it.

    It is flushed before it is returned: WAL inserted but not flushed (a query's page pruning, an
    open transaction's rows) is not sent to the standby until the primary flushes it, which an
    idle WAL writer can leave for 10-15 s. A transaction that writes WAL (here a logical
    decoding message, which physical replay ignores) flushes everything before it at commit."""
    with _connect(primary_dsn) as conn:
        position, flushed = conn.execute(
            "SELECT pg_current_wal_insert_lsn()::text,"
            " pg_current_wal_flush_lsn() >= pg_current_wal_insert_lsn()"
        ).fetchone()
        if not flushed:
            with conn.transaction():
                conn.execute("SET LOCAL synchronous_commit = on")
                conn.execute("SELECT pg_logical_emit_message(true, 'cqrs-bench', 'flush')")
        return position


def wait_replayed(
    primary_dsn: str,
    standby_dsn: str,
    stall: float = 60.0,
    alive: Callable[[], bool] = lambda: True,
    progress: Callable[[str], None] | None = None,
) -> float:
    """Seconds until the standby had replayed the primary's WAL position as it was when called
    (`pg_current_wal_insert_lsn()` there, `pg_last_wal_replay_lsn()` here). A standby replaying a
    long backlog (a large clone's WAL) is waited for as long as its replay advances; StandbyBehind
    once it has not advanced for `stall` seconds, or once `alive()` is false. `progress` gets a line
    every PROGRESS_EVERY seconds of waiting."""
    target = primary_position(primary_dsn)
    started = advanced = reported = time.monotonic()
    last = None
    with _connect(standby_dsn) as conn:
        while True:
            replayed, done, behind = conn.execute(
                "SELECT pg_last_wal_replay_lsn()::text, pg_last_wal_replay_lsn() >= %s::pg_lsn,"
                " pg_size_pretty(pg_wal_lsn_diff(%s::pg_lsn, pg_last_wal_replay_lsn()))",
                (target, target),
            ).fetchone()
            if replayed is None:
                raise StandbyBehind(f"{_where(standby_dsn)} is not a standby (not in recovery)")
            if done:
                return time.monotonic() - started
            now = time.monotonic()
            if replayed != last:
                last, advanced = replayed, now
            if progress and now - reported >= PROGRESS_EVERY:
                reported = now
                progress(f"   the standby is replaying: {behind} behind the primary")
            if now - advanced > stall or not alive():
                raise StandbyBehind(
                    f"the standby had replayed {replayed}, {behind} short of the "
                    f"primary's {target}, after {now - started:.0f}s "
                    f"(no replay for the last {now - advanced:.0f}s)"
                )
            time.sleep(POLL)


def set_feedback(standby_dsn: str, on: bool) -> bool:
    """Set the standby's hot_standby_feedback (ALTER SYSTEM, reloaded; needs a superuser) and
    return the value it then has."""
    with _connect(standby_dsn) as conn:
        conn.execute(f"ALTER SYSTEM SET hot_standby_feedback = {'on' if on else 'off'}")
        conn.execute("SELECT pg_reload_conf()")
        deadline = time.monotonic() + 5
        while True:
            value = conn.execute("SHOW hot_standby_feedback").fetchone()[0] == "on"
            if value == on or time.monotonic() > deadline:
                return value
            time.sleep(POLL)


def _where(dsn: str) -> str:
    return psycopg.conninfo.conninfo_to_dict(dsn).get("host", "") or dsn
