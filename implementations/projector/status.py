"""Where a projection stands: head and checkpoint, events behind, lag, and what holds it back."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from datetime import datetime

import psycopg

from implementations.projector import checkpoint
from implementations.projector.engine import LOCK_NAMESPACE, PROJECTION, lock_key
from implementations.projector.outbox_reader import OUTBOX
from implementations.projector.source import Source

# The oldest transaction with an xid, in any database of the server (pg_snapshot_xmin is the
# server's): while it runs, nothing at or after it is read.
OLDEST_TX = """
    SELECT pid, application_name, state, extract(epoch FROM now() - xact_start)
    FROM pg_stat_activity
    WHERE backend_xid IS NOT NULL
    ORDER BY age(backend_xid) DESC LIMIT 1
"""
CHECKPOINT_ROW = """
    SELECT events_applied, last_lag_ms, last_source_commit, updated_at
    FROM projection_checkpoint WHERE projection = %(name)s
"""
ACTIVE = """
    SELECT count(*) FROM pg_locks
    WHERE locktype = 'advisory' AND classid = %(ns)s AND objid = %(key)s AND granted
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


@dataclass(frozen=True)
class HeldBackBy:
    pid: int
    application_name: str
    state: str
    transaction_seconds: float


@dataclass(frozen=True)
class ProjectionStatus:
    projection: str
    head: str | None  # tx_id:position of the newest committed event
    checkpoint: str  # tx_id:position of the last applied event
    events_behind: int  # committed, not yet applied
    events_held_back: int  # committed, but behind a transaction that is still running
    held_back_by: HeldBackBy | None
    events_applied: int
    last_lag_ms: float | None  # apply commit minus source commit, last batch
    last_source_commit: datetime | None
    updated_at: datetime | None
    projector_active: bool

    def as_dict(self) -> dict:
        return asdict(self)


def _oldest_transaction(conn: psycopg.Connection) -> HeldBackBy | None:
    row = conn.execute(OLDEST_TX).fetchone()
    return HeldBackBy(*row[:3], float(row[3] or 0)) if row else None


def projection_status(
    write_dsn: str, read_dsn: str, name: str = PROJECTION, source: Source = OUTBOX
) -> ProjectionStatus:
    with _connect(read_dsn) as rd, _connect(write_dsn) as wr:
        return status_on(wr, rd, name, source)


def status_on(
    wr: psycopg.Connection,
    rd: psycopg.Connection,
    name: str = PROJECTION,
    source: Source = OUTBOX,
) -> ProjectionStatus:
    """The status read on open autocommit connections to the source's and the read models'
    databases (for a caller that polls: no connection per call)."""
    cp = checkpoint.load(rd, name)
    applied, lag, source_commit, updated = rd.execute(CHECKPOINT_ROW, {"name": name}).fetchone()
    key = {"ns": LOCK_NAMESPACE, "key": lock_key(name) % 2**32}
    active = rd.execute(ACTIVE, key).fetchone()[0] > 0
    head = source.head(wr)
    behind, held = source.behind(wr, cp.at)
    oldest = _oldest_transaction(wr) if held else None
    return ProjectionStatus(
        projection=name,
        head=head.token() if head else None,
        checkpoint=cp.at.token(),
        events_behind=behind,
        events_held_back=held,
        held_back_by=oldest,
        events_applied=applied,
        last_lag_ms=lag,
        last_source_commit=source_commit,
        updated_at=updated,
        projector_active=active,
    )


def _connect(dsn: str) -> psycopg.Connection:
    return psycopg.connect(dsn, autocommit=True, application_name="cqrs-bench:status")


def wait_caught_up(
    write_dsn: str,
    read_dsn: str,
    timeout: float,
    alive: Callable[[], bool] = lambda: True,
    name: str = PROJECTION,
    source: Source = OUTBOX,
) -> float | None:
    """Seconds until the checkpoint covered the source's head as it is now; None after `timeout`
    or as soon as `alive()` says the projector is gone."""
    started = time.monotonic()
    with _connect(write_dsn) as wr, _connect(read_dsn) as target:
        head = source.head(wr)
        while head is not None and not checkpoint.load(target, name).covers(head):
            if time.monotonic() - started > timeout or not alive():
                return None
            time.sleep(0.002)
    return time.monotonic() - started
