"""Reading the outbox in commit order, outside any apply transaction (DESIGN section 4).

One statement takes a snapshot, and returns only events of transactions older than every
transaction still running in it (tx_id < pg_snapshot_xmin): a transaction that got a lower
position but commits later can never be skipped, because nothing at or past the oldest running
transaction is read until it ends. Reading by `position > checkpoint` alone loses such events.

Transaction ids are taken at a transaction's first write, not at commit, so this order is not
commit order between transactions that overlap: what one row ends up holding is decided by row
versions when the events are applied (implementations/read_model/apply.py).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg
from psycopg.types.string import TextLoader

from implementations.projector.positions import Position

READ = """
    WITH h AS (SELECT pg_snapshot_xmin(pg_current_snapshot()) AS xmin)
    SELECT h.xmin::text, e.tx_id::text, e.position, e.event_type, e.payload, e.occurred_at,
           e.committed_at
    FROM h LEFT JOIN LATERAL (
        SELECT tx_id, position, event_type, payload, occurred_at, {committed_at} AS committed_at
        FROM outbox
        WHERE (tx_id, position) > (CAST(%(tx)s AS xid8), %(pos)s) AND tx_id < h.xmin
        ORDER BY tx_id, position
        LIMIT %(limit)s
    ) e ON true
    ORDER BY e.tx_id, e.position
"""


@dataclass(frozen=True)
class OutboxEvent:
    at: Position
    event_type: str
    payload: dict[str, Any]
    occurred_at: datetime
    committed_at: datetime | None  # source commit time (track_commit_timestamp), when known


@dataclass(frozen=True)
class Batch:
    events: list[OutboxEvent]
    horizon: int  # every transaction below this tx_id had ended when the batch was read
    full: bool  # cut short by the limit: more events may be ready


def read_statement(conn: psycopg.Connection) -> str:
    """The read statement, with commit times only where the server tracks them."""
    conn.adapters.register_loader("json", TextLoader)  # payloads stay text: parsed where needed
    tracked = conn.execute("SHOW track_commit_timestamp").fetchone()[0] == "on"
    return READ.format(committed_at="pg_xact_commit_timestamp(xid(tx_id))" if tracked else "NULL")


def read_batch(conn: psycopg.Connection, statement: str, after: Position, limit: int) -> Batch:
    rows = conn.execute(statement, {"tx": str(after.tx_id), "pos": after.position, "limit": limit})
    events, horizon = [], None
    for xmin, tx, pos, kind, payload, occurred, committed in rows:
        horizon = int(xmin)
        if tx is not None:
            events.append(OutboxEvent(Position(int(tx), pos), kind, payload, occurred, committed))
    return Batch(events, horizon, full=len(events) >= limit)
