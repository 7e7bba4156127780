"""Appending domain events to the outbox, in the caller's transaction."""

from __future__ import annotations

import json

from sqlalchemy import Connection, text

from implementations.domain.events import Event, event_type, to_payload

APPEND = text("""
    INSERT INTO outbox (event_type, payload)
    SELECT * FROM unnest(CAST(:types AS text[]), CAST(:payloads AS jsonb[]))
""")


def append(conn: Connection, events: list[Event]) -> None:
    """Append events in order; they commit (or roll back) with the caller's transaction."""
    if events:
        conn.execute(
            APPEND,
            {
                "types": [event_type(e) for e in events],
                "payloads": [json.dumps(to_payload(e)) for e in events],
            },
        )
