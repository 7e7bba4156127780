"""Registering customers and products directly on the write model, with their events.

The domain has no commands for these (the dataset creates them); tests and the contract use this
to start from a small known catalog whose history is in the outbox like the dataset's.
"""

from __future__ import annotations

from sqlalchemy import Connection, text

from implementations.domain.events import CustomerRegistered, ProductAdded
from implementations.write_model import outbox

INSERT_CUSTOMER = text("INSERT INTO customers (id, name, email) VALUES (:id, :name, :email)")
INSERT_PRODUCT = text("""
    INSERT INTO products (id, sku, name, category, price_cents, stock)
    VALUES (:id, :sku, :name, :category, :price_cents, :stock)
""")
ADVANCE_IDS = text("""
    SELECT setval(pg_get_serial_sequence('customers', 'id'),
                  greatest((SELECT max(id) FROM customers), 1)),
           setval(pg_get_serial_sequence('products', 'id'),
                  greatest((SELECT max(id) FROM products), 1))
""")


def register(
    conn: Connection, customers: list[CustomerRegistered], products: list[ProductAdded]
) -> None:
    for customer in customers:
        conn.execute(
            INSERT_CUSTOMER,
            {"id": customer.customer_id, "name": customer.name, "email": customer.email},
        )
    for product in products:
        conn.execute(
            INSERT_PRODUCT,
            {
                "id": product.product_id,
                "sku": product.sku,
                "name": product.name,
                "category": product.category,
                "price_cents": product.price_cents,
                "stock": product.stock,
            },
        )
    conn.execute(ADVANCE_IDS)
    outbox.append(conn, [*customers, *products])
