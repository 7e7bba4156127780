"""crud-replica query side: crud's queries, on the standby. A query given a token (a primary WAL
position, see commands.py) first waits, bounded, until the standby has replayed past it."""

from __future__ import annotations

import time

from sqlalchemy import Connection, Engine, text

from implementations.domain.errors import NotYetVisible
from implementations.live_queries import LiveQueries

# NULL replay position: not a standby (a primary shows everything committed)
REPLAYED = text(
    "SELECT coalesce(pg_last_wal_replay_lsn() >= CAST(:lsn AS pg_lsn), NOT pg_is_in_recovery())"
)
FIRST_PAUSE, MAX_PAUSE = 0.001, 0.02  # seconds between polls, doubling


def wait_replayed(conn: Connection, token: str, bound: float) -> None:
    """Return once the standby has replayed past `token` (polling, pauses doubling from 1 ms to
    20 ms); NotYetVisible after `bound` seconds."""
    started = time.monotonic()
    pause = FIRST_PAUSE
    while not conn.execute(REPLAYED, {"lsn": token}).scalar():
        waited = time.monotonic() - started
        if waited >= bound:
            raise NotYetVisible(
                f"the standby had not caught up with {token} after {bound:g}s", waited
            )
        time.sleep(min(pause, bound - waited))
        pause = min(pause * 2, MAX_PAUSE)
    # the query that follows (READ COMMITTED) takes a new snapshot, which includes it


def query_side(engine: Engine, wait_bound: float) -> LiveQueries:
    return LiveQueries(engine, wait_replayed, wait_bound)
