"""Appending domain events to the outbox, in the caller's transaction."""

from __future__ import annotations

import json

from sqlalchemy import Connection

from implementations.db import driver
from implementations.domain.events import Event, event_type, to_payload

APPEND = """
    WITH appended AS (
        INSERT INTO outbox (event_type, payload)
        SELECT * FROM unnest(CAST(%(types)s AS text[]), CAST(%(payloads)s AS json[]))
        RETURNING tx_id, position
    )
    SELECT tx_id::text, max(position) FROM appended GROUP BY tx_id
"""
# The newest event this transaction sees: a replay's token covers the first order's event.
NEWEST = """
    SELECT tx_id::text, position FROM outbox ORDER BY outbox.tx_id DESC, outbox.position DESC LIMIT 1
"""


def append(conn: Connection, events: list[Event]) -> str:
    """Append events in order, in the caller's transaction; return its consistency token.

    The token ("tx_id:position" of the last event) is covered once the projection has applied
    it. A command that appended nothing (an idempotent replay) gets the newest event its
    transaction sees, which is at or after the first order's event. (Its own transaction id would
    not do: a racing retry can hold a lower id than the checkout it replays.)
    """
    db = driver(conn)
    if not events:
        newest = db.execute(NEWEST).fetchone()
        return f"{newest[0]}:{newest[1]}" if newest else "0:0"
    types = [event_type(e) for e in events]
    payloads = [json.dumps(to_payload(e)) for e in events]
    tx_id, position = db.execute(APPEND, {"types": types, "payloads": payloads}).fetchone()
    return f"{tx_id}:{position}"
