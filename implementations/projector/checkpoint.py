"""The projector's checkpoint in the read database, advanced by compare-and-set.

The checkpoint moves in the same transaction as the read-model updates it covers, and only from
the value the projector last saw: no event is lost or applied twice, without two-phase commit.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime

import psycopg

from implementations.projector.positions import Position

ENSURE = """
    INSERT INTO projection_checkpoint (projection) VALUES (%(name)s) ON CONFLICT DO NOTHING
"""
LOAD = """
    SELECT tx_id::text, position, horizon::text FROM projection_checkpoint WHERE projection = %(name)s
"""
ADVANCE = """
    UPDATE projection_checkpoint
    SET tx_id = CAST(%(tx)s AS xid8), position = %(pos)s,
        horizon = greatest(horizon, CAST(%(horizon)s AS xid8)),
        events_applied = events_applied + %(count)s,
        last_source_commit = coalesce(%(source_commit)s, last_source_commit),
        last_lag_ms = coalesce(
            extract(epoch FROM clock_timestamp() - %(source_commit)s) * 1000, last_lag_ms),
        updated_at = clock_timestamp()
    WHERE projection = %(name)s AND tx_id = CAST(%(old_tx)s AS xid8) AND position = %(old_pos)s
"""
RESET = """
    UPDATE projection_checkpoint
    SET tx_id = '0', position = 0, horizon = '0', events_applied = 0, last_source_commit = NULL,
        last_lag_ms = NULL, updated_at = clock_timestamp()
    WHERE projection = %(name)s
"""


class CheckpointMoved(RuntimeError):
    """Another projector advanced the checkpoint: this batch was not applied."""


@dataclass(frozen=True)
class Checkpoint:
    at: Position
    horizon: int

    def covers(self, token: Position) -> bool:
        """Has every event up to `token` been applied?"""
        return self.at >= token or self.horizon > token.tx_id


def ensure(conn: psycopg.Connection, name: str) -> None:
    conn.execute(ENSURE, {"name": name})


def load(conn: psycopg.Connection, name: str) -> Checkpoint:
    row = conn.execute(LOAD, {"name": name}).fetchone()
    if row is None:
        raise RuntimeError(f"projection {name!r} has no checkpoint row: install the read model")
    return Checkpoint(Position(int(row[0]), row[1]), int(row[2]))


def advance(
    conn: psycopg.Connection,
    name: str,
    old: Position,
    new: Position,
    *,
    horizon: int,
    count: int,
    source_commit: datetime | None,
) -> None:
    """Compare-and-set, in the caller's apply transaction; CheckpointMoved if `old` is stale."""
    cursor = conn.execute(
        ADVANCE,
        {
            "name": name,
            "old_tx": str(old.tx_id),
            "old_pos": old.position,
            "tx": str(new.tx_id),
            "pos": new.position,
            "horizon": str(horizon),
            "count": count,
            "source_commit": source_commit,
        },
    )
    if cursor.rowcount != 1:
        raise CheckpointMoved(f"checkpoint of {name!r} is no longer {old}")


def reset(conn: psycopg.Connection, name: str) -> None:
    conn.execute(RESET, {"name": name})


def wait_until_covered(
    conn: psycopg.Connection, name: str, token: Position, timeout: float
) -> bool:
    """Poll (autocommit `conn`) until the checkpoint covers `token`; False when `timeout` ran out."""
    deadline = time.monotonic() + timeout
    pause = 0.001
    while not load(conn, name).covers(token):
        if time.monotonic() >= deadline:
            return False
        time.sleep(pause)
        pause = min(pause * 2, 0.02)
    return True
