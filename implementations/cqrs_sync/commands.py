"""cqrs-sync command side: the write model, and the command's events applied to the read models in
the same transaction with the apply code the projector uses. Nothing goes to the outbox."""

from __future__ import annotations

import json

from sqlalchemy import Connection, Engine

from implementations.db import driver
from implementations.domain.events import Event, OrderPlaced, event_type, to_payload
from implementations.projector.positions import START
from implementations.projector.source import OutboxEvent
from implementations.read_model.apply import apply
from implementations.write_model.command_side import CommandSide


def apply_now(conn: Connection, events: list[Event]) -> None:
    """Apply `events` to the read models in the command's transaction. An event's time is the
    transaction's (as the outbox's `occurred_at` default would record it): an order placed now
    has `placed_at = now()` in the write model, so its read-model row has the same."""
    if not events:
        return None
    db = driver(conn)
    now = None
    if any(isinstance(e, OrderPlaced) for e in events):
        now = db.execute("SELECT now()").fetchone()[0]
    apply(
        db,
        [OutboxEvent(START, event_type(e), json.dumps(to_payload(e)), now, None) for e in events],
    )
    return None


def command_side(engine: Engine) -> CommandSide:
    return CommandSide(engine, publish=apply_now)
