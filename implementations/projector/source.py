"""Where a projection's events come from: the one interface the engine, its status, waiting for a
token and the lag sampler read events through (the outbox's is `outbox_reader.OUTBOX`).

A source is a table of events in a commit-safe order of Positions (DESIGN section 4): a batch read
after a position never skips an event that commits later at a lower one. Every method runs one
statement on an autocommit connection to the source's database, outside any apply transaction.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Protocol

import psycopg

from implementations.projector.positions import Position


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


ReadBatch = Callable[[Position, int], Batch]  # (after, limit) -> the next events after `after`


class Source(Protocol):
    channel: str  # the channel NOTIFY wakes the projector on (only a hint: it also polls)

    def reader(self, conn: psycopg.Connection) -> ReadBatch:
        """Set up `conn` (the engine's source connection, for its lifetime) and return how to read
        a batch on it: up to `limit` events after a position, in order."""
        ...

    def head(self, conn: psycopg.Connection) -> Position | None:
        """The position of the newest committed event; None when there is none."""
        ...

    def behind(self, conn: psycopg.Connection, after: Position) -> tuple[int, int]:
        """(events committed after `after`, how many of them are held back: not readable yet,
        behind a transaction that is still running)."""
        ...

    def oldest_unapplied_age_ms(
        self, conn: psycopg.Connection, after: Position, limit: int
    ) -> float | None:
        """Milliseconds since the oldest commit among the first `limit` events after `after`;
        None when none is behind or commit times are not known."""
        ...
