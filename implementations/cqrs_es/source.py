"""The projection's source for cqrs-es: the event store's notification log, read in order.

The library takes its table lock before a recording takes notification ids, so ids are given in
commit order: reading `notification_id > checkpoint` never passes over an event that commits
later (what the outbox needs its transaction-id horizon for). Positions are (0, notification_id),
and a command's consistency token is its event's (commands.token).

Each stored event is handed to the shared read-model code as the domain event it stands for,
unpacked in the read statement itself: the aggregates' fields are the payloads' (aggregates.py),
so a payload is the event's state without the library's `timestamp` and `originator_topic`
(and an order's idempotency key), plus the product or order id of its stream where the event
does not carry it. Events no read model shows (stock taken and returned, idempotency claims)
come through as positions with nothing to apply (event_type ""), so the checkpoint moves past
them. An event's time is es_recorded_at's (write_model.sql): its timestamp, the history's moved
by the clone's shift_minutes, as the other tables' times were.
"""

from __future__ import annotations

import psycopg
from eventsourcing.utils import get_topic
from psycopg import sql
from psycopg.types.string import TextLoader

from implementations.cqrs_es import aggregates as a
from implementations.cqrs_es.store import EVENTS_TABLE
from implementations.projector.positions import Position
from implementations.projector.source import Batch, OutboxEvent, ReadBatch

# the stored events the read models show: topic -> (domain event type, id field to add)
PROJECTED = {
    a.Customer.Registered: ("CustomerRegistered", None),
    a.Product.Added: ("ProductAdded", None),
    a.Product.PriceChanged: ("ProductPriceChanged", "product_id"),
    a.Product.Discontinued: ("ProductDiscontinued", "product_id"),
    a.Product.Restocked: ("ProductRestocked", "product_id"),
    a.Order.Placed: ("OrderPlaced", None),
    a.Order.Shipped: ("OrderShipped", "order_id"),
    a.Order.Cancelled: ("OrderCancelled", "order_id"),
}

_READ = """
WITH m (topic, kind, id_key) AS (VALUES {mapping})
SELECT e.notification_id, coalesce(m.kind, ''),
       CASE WHEN m.kind IS NULL THEN '{{}}' ELSE (
           (x.s - 'timestamp' - 'originator_topic' - 'idempotency_key')
           || CASE WHEN m.id_key IS NULL THEN '{{}}'::jsonb
                   ELSE jsonb_build_object(m.id_key, es_number(e.originator_id)) END)::text
       END,
       es_recorded_at(x.s, e.notification_id, h.head, h.shift),
       {committed_at}
FROM {events} e
     CROSS JOIN es_history() h
     LEFT JOIN m ON m.topic = e.topic
     CROSS JOIN LATERAL (SELECT convert_from(e.state, 'UTF8')::jsonb AS s) x
WHERE e.notification_id > %(after)s
ORDER BY e.notification_id
LIMIT %(limit)s
"""


class EventStoreSource:
    channel = EVENTS_TABLE  # the library NOTIFYs on the table's name with every recording

    def reader(self, conn: psycopg.Connection) -> ReadBatch:
        conn.adapters.register_loader("jsonb", TextLoader)
        tracked = conn.execute("SHOW track_commit_timestamp").fetchone()[0] == "on"
        mapping = sql.SQL(", ").join(
            sql.SQL("({}, {}, {})").format(
                sql.Literal(get_topic(cls)), sql.Literal(kind), sql.Literal(key)
            )
            for cls, (kind, key) in PROJECTED.items()
        )
        statement = sql.SQL(_READ).format(
            mapping=mapping,
            events=sql.Identifier(EVENTS_TABLE),
            committed_at=sql.SQL(
                "pg_xact_commit_timestamp(e.xmin)" if tracked else "NULL::timestamptz"
            ),
        )

        def read_batch(after: Position, limit: int) -> Batch:
            params = {"after": after.position, "limit": limit}
            events = [
                OutboxEvent(Position(0, nid), kind, payload, occurred, committed)
                for nid, kind, payload, occurred, committed in conn.execute(statement, params)
            ]
            return Batch(events, 0, full=len(events) >= limit)

        return read_batch

    def head(self, conn: psycopg.Connection) -> Position | None:
        row = conn.execute(
            sql.SQL("SELECT max(notification_id) FROM {}").format(sql.Identifier(EVENTS_TABLE))
        ).fetchone()
        return Position(0, row[0]) if row[0] is not None else None

    def behind(self, conn: psycopg.Connection, after: Position) -> tuple[int, int]:
        """(events recorded after `after`, 0): none is ever held back behind a running one."""
        row = conn.execute(
            sql.SQL("SELECT count(*) FROM {} WHERE notification_id > %s").format(
                sql.Identifier(EVENTS_TABLE)
            ),
            (after.position,),
        ).fetchone()
        return row[0], 0

    def oldest_unapplied_age_ms(
        self, conn: psycopg.Connection, after: Position, limit: int
    ) -> float | None:
        """now() minus the commit time of the first event after `after` (in this log the oldest:
        ids are in commit order); None when none is behind or commit times are not tracked."""
        row = conn.execute(
            sql.SQL(
                "SELECT (extract(epoch FROM now() - pg_xact_commit_timestamp(xmin)) * 1000)"
                "::float8 FROM {} WHERE current_setting('track_commit_timestamp')::bool"
                " AND notification_id > %s ORDER BY notification_id LIMIT 1"
            ).format(sql.Identifier(EVENTS_TABLE)),
            (after.position,),
        ).fetchone()
        return row[0] if row else None


EVENT_STORE = EventStoreSource()
