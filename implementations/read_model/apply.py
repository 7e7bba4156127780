"""Applying a batch of outbox events to the read models: coalesced, then set-based SQL.

Events are folded per target row in Python (a product added and repriced in one batch becomes one
insert), then written with one statement per table and kind of change. Order contributions to the
aggregates are signed (+1 placed, -1 cancelled) and applied in one statement, so an order placed
and cancelled in the same batch nets to nothing. Anything that does not match the read model
(an event for an unknown order, customer or product) raises: a projector never skips an event.

Events arrive in transaction-id order, which is not commit order: of two transactions changing
one row, the one with the lower id can commit last. So a product's price and status and an
order's status are overwritten only by a newer row version (the write model's, carried by the
event), and a batch keeps the highest version per row, not the last event. An overwrite skipped
because the read model already holds a newer version is no error. Sums are order-free as they are.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import psycopg

from implementations.projector.source import OutboxEvent


class ProjectionError(RuntimeError):
    pass


INSERT_CUSTOMERS = """
    INSERT INTO rm_customers (customer_id, name)
    SELECT * FROM unnest(CAST(%(ids)s AS bigint[]), CAST(%(names)s AS text[]))
"""
INSERT_PRODUCTS = """
    INSERT INTO rm_products (product_id, sku, name, category, version, price_cents, active)
    SELECT * FROM unnest(CAST(%(ids)s AS bigint[]), CAST(%(skus)s AS text[]),
        CAST(%(names)s AS text[]), CAST(%(categories)s AS text[]), CAST(%(versions)s AS bigint[]),
        CAST(%(prices)s AS bigint[]), CAST(%(active)s AS boolean[]))
"""


def _overwrite(table: str, key: str, columns: dict[str, str]) -> str:
    """Set `columns` (name: type) of the rows in the arrays whose version is newer than the row's;
    the statement returns how many of the rows exist (a stale version is skipped, not missing)."""
    arrays = "".join(f", CAST(%({name})s AS {kind}[])" for name, kind in columns.items())
    return f"""
    WITH u AS (
        SELECT * FROM unnest(CAST(%(ids)s AS bigint[]), CAST(%(versions)s AS bigint[]){arrays})
            AS u (id, version, {", ".join(columns)})
    ), newer AS (
        UPDATE {table} t SET version = u.version, {", ".join(f"{c} = u.{c}" for c in columns)}
        FROM u WHERE t.{key} = u.id AND t.version < u.version
    )
    SELECT count(*) FROM u JOIN {table} t ON t.{key} = u.id
"""


OVERWRITE_PRODUCTS = _overwrite(
    "rm_products", "product_id", {"price_cents": "bigint", "active": "boolean"}
)
OVERWRITE_ORDERS = _overwrite("rm_orders", "order_id", {"status": "text"})
INSERT_PLACED = """
    WITH e AS (
        SELECT (x->>0)::timestamptz AS placed_at, x->1 AS p
        FROM jsonb_array_elements(CAST(%(events)s AS jsonb)) x
    ), lines AS (
        INSERT INTO rm_order_lines (order_id, line_no, product_id, sku, product_name, category,
                                    quantity, unit_price_cents)
        SELECT (e.p->>'order_id')::bigint, (l->>'line_no')::smallint, pr.product_id, pr.sku, pr.name,
               pr.category, (l->>'quantity')::int, (l->>'unit_price_cents')::bigint
        FROM e CROSS JOIN LATERAL jsonb_array_elements(e.p->'lines') l
        LEFT JOIN rm_products pr ON pr.product_id = (l->>'product_id')::bigint
    )
    INSERT INTO rm_orders (order_id, customer_id, customer_name, status, total_cents, item_count,
                           placed_at)
    SELECT (e.p->>'order_id')::bigint, (e.p->>'customer_id')::bigint, c.name, 'placed',
           (e.p->>'total_cents')::bigint,
           (SELECT sum((l->>'quantity')::int) FROM jsonb_array_elements(e.p->'lines') l),
           e.placed_at
    FROM e LEFT JOIN rm_customers c ON c.customer_id = (e.p->>'customer_id')::bigint
    RETURNING order_id
"""
CONTRIBUTE = """
    WITH s AS (
        SELECT * FROM unnest(CAST(%(ids)s AS bigint[]), CAST(%(signs)s AS int[])) AS s (order_id, sign)
    ), o AS (
        SELECT s.sign, o.order_id, o.customer_id, o.total_cents, o.placed_at,
               date_trunc('minute', o.placed_at) AS minute
        FROM s JOIN rm_orders o ON o.order_id = s.order_id
    ), l AS (
        SELECT o.sign, o.order_id, o.minute, l.product_id, l.category, l.quantity,
               l.quantity * l.unit_price_cents AS amount
        FROM o JOIN rm_order_lines l ON l.order_id = o.order_id
    ), categories AS (
        INSERT INTO rm_category_sales_minute AS t (category, minute, orders, units, revenue_cents)
        SELECT category, minute, sum(sign), sum(sign * units), sum(sign * amount)
        FROM (SELECT category, minute, order_id, sign, sum(quantity) AS units,
                     sum(amount) AS amount
              FROM l GROUP BY category, minute, order_id, sign) per_order
        GROUP BY category, minute
        ON CONFLICT (minute, category) DO UPDATE SET orders = t.orders + excluded.orders,
            units = t.units + excluded.units, revenue_cents = t.revenue_cents + excluded.revenue_cents
    ), products AS (
        INSERT INTO rm_product_sales_minute AS t (product_id, minute, units, revenue_cents)
        SELECT product_id, minute, sum(sign * quantity), sum(sign * amount)
        FROM l GROUP BY product_id, minute
        ON CONFLICT (minute, product_id) DO UPDATE SET units = t.units + excluded.units,
            revenue_cents = t.revenue_cents + excluded.revenue_cents
    ), units AS (
        UPDATE rm_products p SET units_sold = p.units_sold + d.units
        FROM (SELECT product_id, sum(sign * quantity) AS units FROM l GROUP BY product_id) d
        WHERE p.product_id = d.product_id
    ), revenue AS (
        INSERT INTO rm_revenue_minute AS t (minute, orders, revenue_cents)
        SELECT minute, sum(sign), sum(sign * total_cents) FROM o GROUP BY minute
        ON CONFLICT (minute) DO UPDATE SET orders = t.orders + excluded.orders,
            revenue_cents = t.revenue_cents + excluded.revenue_cents
    ), customers AS (
        UPDATE rm_customers c
        SET order_count = c.order_count + d.orders,
            total_spent_cents = c.total_spent_cents + d.spent,
            last_order_at = greatest(c.last_order_at, d.last_placed)
        FROM (SELECT customer_id, sum(sign) AS orders, sum(sign * total_cents) AS spent,
                     max(placed_at) FILTER (WHERE sign > 0) AS last_placed
              FROM o GROUP BY customer_id) d
        WHERE c.customer_id = d.customer_id
    )
    SELECT count(*) FROM o
"""
LAST_ORDER_AT = """
    UPDATE rm_customers c
    SET last_order_at = (SELECT max(o.placed_at) FROM rm_orders o
                         WHERE o.customer_id = c.customer_id AND o.status <> 'cancelled')
    WHERE c.customer_id IN (SELECT customer_id FROM rm_orders
                            WHERE order_id = ANY(CAST(%(ids)s AS bigint[])))
"""


@dataclass
class Changes:
    """One batch of events, folded per target row."""

    customers: list[tuple[int, str]] = field(default_factory=list)
    # new products: sku, name, category; every product changed: newest (version, price, active)
    products: dict[int, tuple[str, str, str]] = field(default_factory=dict)
    product_states: dict[int, tuple] = field(default_factory=dict)
    placed: list[tuple[dict, object]] = field(default_factory=list)  # (payload, placed_at)
    order_states: dict[int, tuple] = field(default_factory=dict)  # newest (version, status)
    cancelled: list[int] = field(default_factory=list)  # every cancellation, for the sums

    def add(self, event: OutboxEvent) -> None:
        p, kind = event.payload, event.event_type
        if not kind:  # a position of a source with nothing for the read models (say, stock taken)
            return
        if kind == "OrderPlaced":  # the payload stays JSON text: the database unpacks it
            self.placed.append((p, event.occurred_at))
            return
        p = json.loads(p)
        if kind == "OrderShipped":
            _keep_newest(self.order_states, p["order_id"], (p["version"], "shipped"))
        elif kind == "OrderCancelled":
            self.cancelled.append(p["order_id"])
            _keep_newest(self.order_states, p["order_id"], (p["version"], "cancelled"))
        elif kind == "CustomerRegistered":
            self.customers.append((p["customer_id"], p["name"]))
        elif kind == "ProductAdded":
            self.products[p["product_id"]] = (p["sku"], p["name"], p["category"])
            _keep_newest(self.product_states, p["product_id"], (1, p["price_cents"], True))
        elif kind == "ProductPriceChanged":
            state = (p["version"], p["new_price_cents"], True)
            _keep_newest(self.product_states, p["product_id"], state)
        elif kind == "ProductDiscontinued":
            state = (p["version"], p["price_cents"], False)
            _keep_newest(self.product_states, p["product_id"], state)
        elif kind != "ProductRestocked":  # stock is not part of any read model
            raise ProjectionError(f"unknown event type {kind!r} at {event.at}")


def _keep_newest(states: dict[int, tuple], row_id: int, state: tuple) -> None:
    """Keep `state` (its version first) for the row unless a newer one is kept."""
    kept = states.get(row_id)
    if kept is None or state[0] > kept[0]:
        states[row_id] = state


def apply(conn: psycopg.Connection, events: list[OutboxEvent]) -> None:
    """Apply `events` (in the outbox's (tx_id, position) order) in the caller's transaction."""
    changes = Changes()
    for event in events:
        changes.add(event)
    _catalog(conn, changes)
    _orders(conn, changes)


def _overwrite_newer(
    conn: psycopg.Connection,
    statement: str,
    states: dict[int, tuple],
    columns: tuple[str, ...],
    what: str,
) -> None:
    """Overwrite the rows whose kept state is newer; raise if any row is not in the read model."""
    versions, *values = zip(*states.values(), strict=True)
    params = {"ids": _ints(states), "versions": _ints(versions)}
    params.update({name: list(column) for name, column in zip(columns, values, strict=True)})
    _expect_n(conn.execute(statement, params).fetchone()[0], len(states), what)


def _catalog(conn: psycopg.Connection, ch: Changes) -> None:
    if ch.customers:
        ids, names = zip(*ch.customers, strict=True)
        conn.execute(INSERT_CUSTOMERS, {"ids": list(ids), "names": list(names)})
    if ch.products:
        skus, names, categories = zip(*ch.products.values(), strict=True)
        versions, prices, active = zip(
            *(ch.product_states.pop(p) for p in ch.products), strict=True
        )
        conn.execute(
            INSERT_PRODUCTS,
            {
                "ids": list(ch.products),
                "skus": list(skus),
                "names": list(names),
                "categories": list(categories),
                "versions": list(versions),
                "prices": list(prices),
                "active": list(active),
            },
        )
    if ch.product_states:
        _overwrite_newer(
            conn,
            OVERWRITE_PRODUCTS,
            ch.product_states,
            ("price_cents", "active"),
            "price and status changes",
        )


def _ints(values) -> str:
    """An array literal: the server parses it, instead of psycopg dumping element by element."""
    return "{" + ",".join(map(str, values)) + "}"


def _orders(conn: psycopg.Connection, ch: Changes) -> None:
    placed = []
    if ch.placed:
        events = "[" + ",".join(f'["{at.isoformat()}",{p}]' for p, at in ch.placed) + "]"
        placed = [r[0] for r in conn.execute(INSERT_PLACED, {"events": events})]
        _expect_n(len(placed), len(ch.placed), "placed orders")
    signed = placed + ch.cancelled
    if signed:
        signs = [1] * len(placed) + [-1] * len(ch.cancelled)
        matched = conn.execute(
            CONTRIBUTE, {"ids": _ints(signed), "signs": _ints(signs)}
        ).fetchone()[0]
        if matched != len(signed):
            raise ProjectionError(
                f"{len(signed) - matched} placed/cancelled orders not in the read model"
            )
    if ch.order_states:
        _overwrite_newer(
            conn, OVERWRITE_ORDERS, ch.order_states, ("status",), "order status changes"
        )
    if ch.cancelled:
        conn.execute(LAST_ORDER_AT, {"ids": _ints(ch.cancelled)})


def _expect_n(found: int, count: int, what: str) -> None:
    if found != count:
        raise ProjectionError(f"{what}: {found} rows, {count} expected")
