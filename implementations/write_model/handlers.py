"""The write-model handlers of the commands other than checkout (write_model/checkout.py). Each
returns its result and the domain events it produced."""

from __future__ import annotations

from sqlalchemy import Connection, text

from implementations.domain.commands import (
    CancelOrder,
    ChangeProductPrice,
    DiscontinueProduct,
    RestockProduct,
    ShipOrder,
)
from implementations.domain.errors import InvalidTransition, NotFound, ProductDiscontinued
from implementations.domain.events import (
    Event,
    OrderCancelled,
    OrderShipped,
    ProductPriceChanged,
    ProductRestocked,
)
from implementations.domain.events import (
    ProductDiscontinued as ProductDiscontinuedEvent,
)
from implementations.domain.results import OrderStatusChanged, ProductState

SET_ORDER_STATUS = text("""
    UPDATE orders SET status = :new_status, version = version + 1
    WHERE id = :order_id AND status = 'placed' RETURNING version
""")
ORDER_STATUS = text("SELECT status FROM orders WHERE id = :order_id")

# Products are locked in id order, as checkout locks them, so the two never deadlock.
RETURN_STOCK = text("""
    WITH locked AS MATERIALIZED (
        SELECT p.id FROM products p JOIN order_lines l ON l.product_id = p.id
        WHERE l.order_id = :order_id ORDER BY p.id FOR UPDATE OF p
    )
    UPDATE products p SET stock = p.stock + l.quantity
    FROM order_lines l, locked
    WHERE l.order_id = :order_id AND l.product_id = p.id AND locked.id = p.id
""")

PRODUCT = text("SELECT status FROM products WHERE id = :product_id")

CHANGE_PRICE = text("""
    WITH old AS (
        SELECT id, price_cents FROM products WHERE id = :product_id AND status = 'active' FOR UPDATE
    ), ins AS (
        INSERT INTO price_history (product_id, old_price_cents, new_price_cents, reason)
        SELECT id, price_cents, :new_price_cents, :reason FROM old
    )
    UPDATE products p SET price_cents = :new_price_cents, version = p.version + 1
    FROM old WHERE p.id = old.id
    RETURNING p.id, old.price_cents, p.price_cents, p.stock, p.status, p.version
""")

DISCONTINUE = text("""
    UPDATE products SET status = 'discontinued', version = version + 1
    WHERE id = :product_id AND status = 'active'
    RETURNING id, price_cents, stock, status, version
""")

# Stock is in no read model: restocks (like checkouts and cancellations) leave the version alone,
# so they never make a concurrent price change look stale.
RESTOCK = text("""
    UPDATE products SET stock = stock + :quantity WHERE id = :product_id AND status = 'active'
    RETURNING id, price_cents, stock, status
""")


def _transition(conn: Connection, order_id: int, new_status: str) -> int:
    """Move a placed order to `new_status`; the order's new version."""
    params = {"order_id": order_id, "new_status": new_status}
    if (version := conn.execute(SET_ORDER_STATUS, params).scalar()) is not None:
        return version
    current = conn.execute(ORDER_STATUS, {"order_id": order_id}).scalar()
    if current is None:
        raise NotFound(f"order {order_id} does not exist")
    raise InvalidTransition(
        f"order {order_id} is {current}; only placed orders can be {new_status}"
    )


def cancel_order(conn: Connection, cmd: CancelOrder) -> tuple[OrderStatusChanged, list[Event]]:
    version = _transition(conn, cmd.order_id, "cancelled")
    conn.execute(RETURN_STOCK, {"order_id": cmd.order_id})  # stock does not touch the version
    return OrderStatusChanged(cmd.order_id, "cancelled"), [OrderCancelled(cmd.order_id, version)]


def ship_order(conn: Connection, cmd: ShipOrder) -> tuple[OrderStatusChanged, list[Event]]:
    version = _transition(conn, cmd.order_id, "shipped")
    return OrderStatusChanged(cmd.order_id, "shipped"), [OrderShipped(cmd.order_id, version)]


def _refuse_product_change(conn: Connection, product_id: int) -> None:
    """Raise why a command for an active product found no row to change."""
    if conn.execute(PRODUCT, {"product_id": product_id}).scalar() is None:
        raise NotFound(f"product {product_id} does not exist")
    raise ProductDiscontinued(f"product {product_id} is discontinued")


def change_product_price(
    conn: Connection, cmd: ChangeProductPrice
) -> tuple[ProductState, list[Event]]:
    params = {
        "product_id": cmd.product_id,
        "new_price_cents": cmd.new_price_cents,
        "reason": cmd.reason,
    }
    row = conn.execute(CHANGE_PRICE, params).first()
    if row is None:
        _refuse_product_change(conn, cmd.product_id)
    product_id, old_price, price, stock, status, version = row
    event = ProductPriceChanged(product_id, old_price, price, cmd.reason, version)
    return ProductState(product_id, price, stock, status), [event]


def discontinue_product(
    conn: Connection, cmd: DiscontinueProduct
) -> tuple[ProductState, list[Event]]:
    row = conn.execute(DISCONTINUE, {"product_id": cmd.product_id}).first()
    if row is None:
        _refuse_product_change(conn, cmd.product_id)
    product_id, price, stock, status, version = row
    event = ProductDiscontinuedEvent(product_id, price, version)
    return ProductState(product_id, price, stock, status), [event]


def restock_product(conn: Connection, cmd: RestockProduct) -> tuple[ProductState, list[Event]]:
    row = conn.execute(RESTOCK, {"product_id": cmd.product_id, "quantity": cmd.quantity}).first()
    if row is None:
        _refuse_product_change(conn, cmd.product_id)
    state = ProductState(*row)
    return state, [ProductRestocked(cmd.product_id, cmd.quantity, state.stock)]
