"""PlaceOrder on the write model: three statements in one transaction, shared by every architecture.

1. insert the order under its idempotency key (a concurrent retry waits here, then replays);
2. lock the products in id order (no deadlocks) and take the stock where active and sufficient;
3. insert the lines at the current prices and set the order total.

`cqrs-bench bench checkout` generates its pgbench script from these statement texts. They run on
the psycopg connection directly (see implementations.db.driver), hence `%(name)s` parameters.
"""

from __future__ import annotations

import psycopg.errors
from sqlalchemy import Connection

from implementations.db import driver
from implementations.domain.commands import PlaceOrder
from implementations.domain.errors import NotFound, OutOfStock, ProductDiscontinued
from implementations.domain.events import OrderPlaced, PlacedLine
from implementations.domain.results import PlacedOrder

INSERT_ORDER = """
    INSERT INTO orders (customer_id, status, total_cents, placed_at, idempotency_key)
    VALUES (%(customer_id)s, 'placed', 0, now(), %(idempotency_key)s)
    ON CONFLICT (idempotency_key) DO NOTHING
    RETURNING id, placed_at
"""

TAKE_STOCK = """
    WITH wanted AS (
        SELECT * FROM unnest(CAST(%(product_ids)s AS bigint[]), CAST(%(quantities)s AS int[]))
            AS w (product_id, quantity)
    ), locked AS MATERIALIZED (
        SELECT id FROM products WHERE id IN (SELECT product_id FROM wanted)
        ORDER BY id FOR UPDATE
    )
    UPDATE products p SET stock = p.stock - w.quantity
    FROM wanted w, locked l
    WHERE p.id = w.product_id AND l.id = p.id AND p.status = 'active' AND p.stock >= w.quantity
    RETURNING p.id
"""

INSERT_LINES = """
    WITH lines AS (
        INSERT INTO order_lines (order_id, line_no, product_id, quantity, unit_price_cents)
        SELECT %(order_id)s, w.line_no, w.product_id, w.quantity, p.price_cents
        FROM unnest(CAST(%(product_ids)s AS bigint[]), CAST(%(quantities)s AS int[]))
            WITH ORDINALITY AS w (product_id, quantity, line_no)
        JOIN products p ON p.id = w.product_id
        RETURNING line_no, quantity, unit_price_cents
    ), t AS (
        SELECT sum(quantity * unit_price_cents) AS total,
               array_agg(unit_price_cents ORDER BY line_no) AS prices
        FROM lines
    )
    UPDATE orders o SET total_cents = t.total FROM t WHERE o.id = %(order_id)s
    RETURNING o.total_cents, t.prices
"""

REPLAY = """
    SELECT o.id, o.total_cents, o.placed_at, sum(l.quantity) AS units
    FROM orders o JOIN order_lines l ON l.order_id = o.id
    WHERE o.idempotency_key = %(idempotency_key)s
    GROUP BY o.id
"""

WHY_NOT = "SELECT id, status, stock FROM products WHERE id = ANY(CAST(%(ids)s AS bigint[]))"


def place_order(conn: Connection, cmd: PlaceOrder) -> tuple[PlacedOrder, list[OrderPlaced]]:
    """Place the order, or return the one its idempotency key already placed (and no event)."""
    db = driver(conn)
    try:
        row = db.execute(
            INSERT_ORDER, {"customer_id": cmd.customer_id, "idempotency_key": cmd.idempotency_key}
        ).fetchone()
    except psycopg.errors.ForeignKeyViolation as exc:
        raise NotFound(f"customer {cmd.customer_id} does not exist") from exc
    if row is None:
        return _replay(db, cmd), []
    order_id, placed_at = row
    ids = [line.product_id for line in cmd.lines]
    quantities = [line.quantity for line in cmd.lines]
    taken = db.execute(TAKE_STOCK, {"product_ids": ids, "quantities": quantities}).fetchall()
    if len(taken) != len(ids):
        _explain_refusal(db, cmd, taken={pid for (pid,) in taken})
    total, prices = db.execute(
        INSERT_LINES, {"order_id": order_id, "product_ids": ids, "quantities": quantities}
    ).fetchone()
    lines = tuple(
        PlacedLine(
            line_no=n, product_id=line.product_id, quantity=line.quantity, unit_price_cents=price
        )
        for n, (line, price) in enumerate(zip(cmd.lines, prices, strict=True), start=1)
    )
    placed = PlacedOrder(
        order_id=order_id, total_cents=total, item_count=sum(quantities), placed_at=placed_at
    )
    event = OrderPlaced(
        order_id=order_id, customer_id=cmd.customer_id, total_cents=total, lines=lines
    )
    return placed, [event]


def _replay(db: psycopg.Connection, cmd: PlaceOrder) -> PlacedOrder:
    order_id, total, placed_at, units = db.execute(
        REPLAY, {"idempotency_key": cmd.idempotency_key}
    ).fetchone()
    return PlacedOrder(order_id, total, int(units), placed_at, replayed=True)


def _explain_refusal(db: psycopg.Connection, cmd: PlaceOrder, taken: set[int]) -> None:
    """Raise the domain error for the first line whose product could not supply its quantity."""
    refused = [line for line in cmd.lines if line.product_id not in taken]
    found = {
        pid: (status, stock)
        for pid, status, stock in db.execute(
            WHY_NOT, {"ids": [line.product_id for line in refused]}
        )
    }
    for line in refused:
        if line.product_id not in found:
            raise NotFound(f"product {line.product_id} does not exist")
        status, stock = found[line.product_id]
        if status != "active":
            raise ProductDiscontinued(f"product {line.product_id} is discontinued")
        if stock < line.quantity:
            raise OutOfStock(
                f"product {line.product_id} has {stock} in stock, {line.quantity} requested"
            )
    raise AssertionError("stock update refused a line that every check accepts")
