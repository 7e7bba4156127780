"""Reading the outbox in commit order, outside any apply transaction (DESIGN section 4).

One statement takes a snapshot, and returns only events of transactions older than every
transaction still running in it (tx_id < pg_snapshot_xmin): a transaction that got a lower
position but commits later can never be skipped, because nothing at or past the oldest running
transaction is read until it ends. Reading by `position > checkpoint` alone loses such events.

Transaction ids are taken at a transaction's first write, not at commit, so this order is not
commit order between transactions that overlap: what one row ends up holding is decided by row
versions when the events are applied (implementations/read_model/apply.py).

OUTBOX is the outbox as a projection's Source (source.py): this reading, and the head, the events
behind and the oldest unapplied commit that status and the lag sampler ask for.
"""

from __future__ import annotations

from functools import partial

import psycopg
from psycopg.types.string import TextLoader

from implementations.projector.positions import Position
from implementations.projector.source import Batch, OutboxEvent, ReadBatch

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
# Where a projection stands (status.py): the newest event, and the events after a checkpoint.
HEAD = """
    SELECT tx_id::text, position FROM outbox ORDER BY outbox.tx_id DESC, outbox.position DESC LIMIT 1
"""
BEHIND = """
    SELECT count(*),
           count(*) FILTER (WHERE tx_id >= pg_snapshot_xmin(pg_current_snapshot()))
    FROM outbox WHERE (tx_id, position) > (CAST(%(tx)s AS xid8), %(pos)s)
"""
# Commit times of the events after the checkpoint (the same events status counts as behind).
# Commit order is not tx_id order, so the oldest commit is the minimum over them; it is taken over
# the first `limit` of them in (tx_id, position) order, to stay cheap when far behind.
OLDEST_UNAPPLIED = """
    SELECT (extract(epoch FROM now() - min(pg_xact_commit_timestamp(xid(tx_id)))) * 1000)::float8
    FROM (SELECT tx_id FROM outbox
          WHERE (tx_id, position) > (CAST(%(tx)s AS xid8), %(pos)s)
          ORDER BY tx_id, position LIMIT %(limit)s) behind
"""


def read_statement(conn: psycopg.Connection) -> str:
    """The read statement, with commit times only where the server tracks them."""
    conn.adapters.register_loader("json", TextLoader)  # payloads stay text: parsed where needed
    tracked = conn.execute("SHOW track_commit_timestamp").fetchone()[0] == "on"
    return READ.format(committed_at="pg_xact_commit_timestamp(xid(tx_id))" if tracked else "NULL")


def read_batch(conn: psycopg.Connection, statement: str, after: Position, limit: int) -> Batch:
    rows = conn.execute(statement, {**_after(after), "limit": limit})
    events, horizon = [], None
    for xmin, tx, pos, kind, payload, occurred, committed in rows:
        horizon = int(xmin)
        if tx is not None:
            events.append(OutboxEvent(Position(int(tx), pos), kind, payload, occurred, committed))
    return Batch(events, horizon, full=len(events) >= limit)


class OutboxSource:
    """The outbox (implementations/write_model/outbox.py) as a projection's Source."""

    channel = "outbox"  # notify.sql's trigger

    def reader(self, conn: psycopg.Connection) -> ReadBatch:
        return partial(read_batch, conn, read_statement(conn))

    def head(self, conn: psycopg.Connection) -> Position | None:
        row = conn.execute(HEAD).fetchone()
        return Position(int(row[0]), row[1]) if row else None

    def behind(self, conn: psycopg.Connection, after: Position) -> tuple[int, int]:
        behind, held = conn.execute(BEHIND, _after(after)).fetchone()
        return behind, held

    def oldest_unapplied_age_ms(
        self, conn: psycopg.Connection, after: Position, limit: int
    ) -> float | None:
        return conn.execute(OLDEST_UNAPPLIED, {**_after(after), "limit": limit}).fetchone()[0]


def _after(at: Position) -> dict:
    return {"tx": str(at.tx_id), "pos": at.position}


OUTBOX = OutboxSource()
