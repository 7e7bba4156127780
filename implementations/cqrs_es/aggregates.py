"""cqrs-es's write side: the domain as event-sourced aggregates of the `eventsourcing` library.

Each aggregate is a stream in the event store; its state is only ever the fold of its events.
Their fields are named as the shared domain events' payloads (implementations/domain/events.py),
so the projection hands them to the same read-model code (`DOMAIN_EVENTS`).

- Customer: registered once.
- Product: added, price changed, discontinued, restocked; and the stock every checkout takes and
  every cancellation gives back (StockTaken / StockReturned), so a hot product's stream grows
  with its sales: that is what snapshots are for. `row_version` is the write model's `version`
  column (bumped by price changes and discontinuation only: the read models keep the newest).
- Order: placed (with its lines at the prices of the moment), shipped or cancelled.
- Checkout: one per idempotency key, recorded with its order in the same atomic recording, so a
  second checkout with the key conflicts on the key's stream and replays the first order.

Stream ids are deterministic UUIDs: `stream_id(kind, id)` for the numbered ones (the id in the
last 16 hex digits, the kind in the first 8), `checkout_id(key)` the MD5 of the key (what
PostgreSQL's `md5(key)::uuid` gives, so the dataset's history can be converted in SQL).
"""

from __future__ import annotations

import hashlib
from typing import Any
from uuid import UUID

from eventsourcing.domain import Aggregate, event

CUSTOMER, PRODUCT, ORDER = 1, 2, 3


def stream_id(kind: int, number: int) -> UUID:
    """The stream of customer, product or order `number` (any bigint id)."""
    return UUID(int=(kind << 96) | number)


def checkout_id(idempotency_key: str) -> UUID:
    return UUID(hashlib.md5(idempotency_key.encode()).hexdigest())  # noqa: S324 - an id, not a secret


class Customer(Aggregate):
    @staticmethod
    def create_id(customer_id: int, **_: Any) -> UUID:
        return stream_id(CUSTOMER, customer_id)

    @event("Registered")
    def __init__(self, customer_id: int, name: str, email: str) -> None:
        self.customer_id, self.name, self.email = customer_id, name, email


class Product(Aggregate):
    @staticmethod
    def create_id(product_id: int, **_: Any) -> UUID:
        return stream_id(PRODUCT, product_id)

    @event("Added")
    def __init__(
        self, product_id: int, sku: str, name: str, category: str, price_cents: int, stock: int
    ) -> None:
        self.product_id, self.sku, self.name, self.category = product_id, sku, name, category
        self.price_cents, self.stock = price_cents, stock
        self.status, self.row_version = "active", 1

    @property
    def active(self) -> bool:
        return self.status == "active"

    @event("PriceChanged")
    def change_price(
        self, old_price_cents: int, new_price_cents: int, reason: str, version: int
    ) -> None:
        self.price_cents, self.row_version = new_price_cents, version

    @event("Discontinued")
    def discontinue(self, price_cents: int, version: int) -> None:
        self.status, self.row_version = "discontinued", version

    @event("Restocked")
    def restock(self, quantity: int, stock: int) -> None:
        self.stock = stock

    @event("StockTaken")
    def take_stock(self, order_id: int, quantity: int) -> None:
        self.stock -= quantity

    @event("StockReturned")
    def return_stock(self, order_id: int, quantity: int) -> None:
        self.stock += quantity


class Order(Aggregate):
    @staticmethod
    def create_id(order_id: int, **_: Any) -> UUID:
        return stream_id(ORDER, order_id)

    @event("Placed")
    def __init__(
        self,
        order_id: int,
        customer_id: int,
        total_cents: int,
        lines: list[dict[str, int]],
        idempotency_key: str,
    ) -> None:
        self.order_id, self.customer_id, self.total_cents = order_id, customer_id, total_cents
        self.lines, self.idempotency_key = lines, idempotency_key
        self.status, self.row_version = "placed", 1

    @event("Shipped")
    def ship(self, version: int) -> None:
        self.status, self.row_version = "shipped", version

    @event("Cancelled")
    def cancel(self, version: int) -> None:
        self.status, self.row_version = "cancelled", version


class Checkout(Aggregate):
    @staticmethod
    def create_id(idempotency_key: str, **_: Any) -> UUID:
        return checkout_id(idempotency_key)

    @event("Claimed")
    def __init__(self, idempotency_key: str, order_id: int) -> None:
        self.idempotency_key, self.order_id = idempotency_key, order_id
