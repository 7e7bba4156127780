"""The dataset's history as event streams: the outbox's events, converted in one set-based INSERT.

The outbox of a dataset clone holds every event of the seeded history in commit order (customers,
products, price changes, removals, orders placed, shipped and cancelled). Each becomes its
aggregate's event, with the fields the aggregates declare (their names are the payloads'), plus
what only the event store records: the idempotency key each order claimed (from `orders`), and
the stock each order took from, and each cancellation gave back to, every product on its lines
(from the order's lines). Streams get their versions in outbox order, the notification log its
ids in the same order, so the log is the outbox's commit order. Event timestamps are the
outbox's `occurred_at`: the dataset's own time (a run clone's shift is applied when they are
read, see source.py).
"""

from __future__ import annotations

import time

import psycopg
from eventsourcing.utils import get_topic
from psycopg import sql

from implementations.cqrs_es import aggregates as a
from implementations.cqrs_es.store import EVENTS_TABLE

HISTORY_HEAD = "es_history_head"  # dataset_info key: the last notification id of the history
HISTORY_SHIFT = "es_history_shift"  # dataset_info key: the clone's shift_minutes when converted

_CONVERT = """
WITH ob AS (
    SELECT row_number() OVER (ORDER BY tx_id, position) AS n, event_type, payload::jsonb AS p,
           jsonb_build_object('timestamp', jsonb_build_object(
               '_type_', 'datetime_iso',
               '_data_', to_char(occurred_at AT TIME ZONE 'UTC',
                                 'YYYY-MM-DD"T"HH24:MI:SS.US"+00:00"'))) AS ts
    FROM outbox
), ev (n, sub, stream, topic, state) AS (
    SELECT n, 0, es_stream(1, (p->>'customer_id')::bigint), {registered},
           p || ts || jsonb_build_object('originator_topic', {customer})
    FROM ob WHERE event_type = 'CustomerRegistered'
    UNION ALL
    SELECT n, 0, es_stream(2, (p->>'product_id')::bigint), {added},
           p || ts || jsonb_build_object('originator_topic', {product})
    FROM ob WHERE event_type = 'ProductAdded'
    UNION ALL
    SELECT n, 0, es_stream(2, (p->>'product_id')::bigint),
           CASE event_type WHEN 'ProductPriceChanged' THEN {price_changed}
                           WHEN 'ProductDiscontinued' THEN {discontinued}
                           ELSE {restocked} END,
           (p - 'product_id') || ts
    FROM ob WHERE event_type IN ('ProductPriceChanged', 'ProductDiscontinued', 'ProductRestocked')
    UNION ALL
    SELECT ob.n, 0, es_stream(3, o.id), {placed},
           p || ts || jsonb_build_object('originator_topic', {order},
                                         'idempotency_key', o.idempotency_key)
    FROM ob JOIN orders o ON o.id = (p->>'order_id')::bigint WHERE event_type = 'OrderPlaced'
    UNION ALL
    SELECT ob.n, 1, md5(o.idempotency_key)::uuid, {claimed},
           ts || jsonb_build_object('originator_topic', {checkout},
                                    'idempotency_key', o.idempotency_key, 'order_id', o.id)
    FROM ob JOIN orders o ON o.id = (p->>'order_id')::bigint WHERE event_type = 'OrderPlaced'
    UNION ALL
    SELECT n, 1 + (l->>'line_no')::int, es_stream(2, (l->>'product_id')::bigint), {taken},
           ts || jsonb_build_object('order_id', (p->>'order_id')::bigint,
                                    'quantity', (l->>'quantity')::int)
    FROM ob CROSS JOIN LATERAL jsonb_array_elements(p->'lines') l
    WHERE event_type = 'OrderPlaced'
    UNION ALL
    SELECT n, 0, es_stream(3, (p->>'order_id')::bigint),
           CASE event_type WHEN 'OrderShipped' THEN {shipped} ELSE {cancelled} END,
           (p - 'order_id') || ts
    FROM ob WHERE event_type IN ('OrderShipped', 'OrderCancelled')
    UNION ALL
    SELECT n, l.line_no, es_stream(2, l.product_id), {returned},
           ts || jsonb_build_object('order_id', l.order_id, 'quantity', l.quantity)
    FROM ob JOIN order_lines l ON l.order_id = (p->>'order_id')::bigint
    WHERE event_type = 'OrderCancelled'
)
INSERT INTO {events} (originator_id, originator_version, topic, state, notification_id)
SELECT stream, row_number() OVER (PARTITION BY stream ORDER BY n, sub), topic,
       convert_to(state::text, 'UTF8'), row_number() OVER (ORDER BY n, sub)
FROM ev
"""


def topics() -> dict[str, sql.Composable]:
    """The SQL literal of each aggregate's and event's topic, by a short name."""
    classes = {
        "customer": a.Customer,
        "product": a.Product,
        "order": a.Order,
        "checkout": a.Checkout,
        "registered": a.Customer.Registered,
        "added": a.Product.Added,
        "price_changed": a.Product.PriceChanged,
        "discontinued": a.Product.Discontinued,
        "restocked": a.Product.Restocked,
        "taken": a.Product.StockTaken,
        "returned": a.Product.StockReturned,
        "placed": a.Order.Placed,
        "claimed": a.Checkout.Claimed,
        "shipped": a.Order.Shipped,
        "cancelled": a.Order.Cancelled,
    }
    return {name: sql.Literal(get_topic(cls)) for name, cls in classes.items()}


def convert(conn: psycopg.Connection) -> tuple[int, float]:
    """Write the outbox's history into the empty event store (write_model.sql, which defines
    es_stream, has run), in the caller's transaction; the events written and the seconds it took.
    Also: the order id sequence past the history's orders, and HISTORY_HEAD and HISTORY_SHIFT in
    dataset_info."""
    started = time.perf_counter()
    statement = sql.SQL(_CONVERT).format(events=sql.Identifier(EVENTS_TABLE), **topics())
    written = conn.execute(statement).rowcount
    conn.execute(
        sql.SQL("SELECT setval(pg_get_serial_sequence({}, 'notification_id'), %s)").format(
            sql.Literal(EVENTS_TABLE)
        ),
        (max(written, 1),),
    )
    conn.execute(
        "SELECT setval('es_order_ids', (SELECT coalesce(max(id), 0) + 1 FROM orders), false)"
    )
    conn.execute(
        """INSERT INTO dataset_info (key, value)
           VALUES (%s, %s),
                  (%s, coalesce((SELECT value FROM dataset_info WHERE key = 'shift_minutes'), '0'))""",
        (HISTORY_HEAD, str(written), HISTORY_SHIFT),
    )
    return written, time.perf_counter() - started
