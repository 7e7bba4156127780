"""Appending domain events to the outbox, in the caller's transaction."""

from __future__ import annotations

import json

from sqlalchemy import Connection

from implementations.db import driver
from implementations.domain.events import Event, event_type, to_payload

APPEND = """
    WITH appended AS (
        INSERT INTO outbox (event_type, payload)
        SELECT * FROM unnest(CAST(%(types)s AS text[]), CAST(%(payloads)s AS jsonb[]))
        RETURNING tx_id, position
    )
    SELECT tx_id::text, max(position) FROM appended GROUP BY tx_id
"""
CURRENT_TX = "SELECT pg_current_xact_id()::text"


def append(conn: Connection, events: list[Event]) -> str:
    """Append events in order, in the caller's transaction; return its consistency token.

    The token ("tx_id:position" of the last event) is covered once the projection has applied
    it. A command that appended nothing (an idempotent replay) gets "tx_id:0" of its own
    transaction, covered once every older transaction's events are applied.
    """
    db = driver(conn)
    if not events:
        return f"{db.execute(CURRENT_TX).fetchone()[0]}:0"
    types = [event_type(e) for e in events]
    payloads = [json.dumps(to_payload(e)) for e in events]
    tx_id, position = db.execute(APPEND, {"types": types, "payloads": payloads}).fetchone()
    return f"{tx_id}:{position}"
