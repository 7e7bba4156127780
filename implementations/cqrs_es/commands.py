"""cqrs-es command side: each command loads its aggregates from the event store, decides, and
records all their new events in one atomic recording.

A recording that finds a stream moved on since it was loaded (IntegrityError: another command
appended to it first, typically a hot product) is decided again from freshly loaded aggregates,
after a random pause of up to 1, 2, 4, ... ms, at most the session's `retries` times, each
counted in its `retried` as a serialization failure is; what still conflicts is VersionConflict
(the API's 409 with Retry-After), never a 500.

Checkout claims its idempotency key's stream in the same recording. It looks for an earlier
claim only when the checkout cannot go through (a domain error, or a conflict: a key already
claimed is a stream that exists), so a new key costs no extra read: the same key returns the
first order (`replayed`) and records nothing, whatever the stock is now. Customers are never
removed, so a customer once found is not looked up again by the same process. Order ids come
from a sequence, as crud's identity column gives them.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from typing import TypeVar
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError

from implementations.cqrs_es.aggregates import (
    CUSTOMER,
    ORDER,
    PRODUCT,
    Checkout,
    Order,
    Product,
    checkout_id,
    stream_id,
)
from implementations.cqrs_es.store import IntegrityError, Store, store_edge
from implementations.db import current_session
from implementations.domain import commands as c
from implementations.domain import results as r
from implementations.domain.errors import (
    InvalidTransition,
    NotFound,
    OutOfStock,
    ProductDiscontinued,
    VersionConflict,
)

R = TypeVar("R")
ORDER_IDS = "es_order_ids"  # the sequence order ids come from


class EsCommandSide:
    def __init__(self, store: Store) -> None:
        self.store = store
        self._customers: set[int] = set()  # found in the store: a customer stream never ends

    # -- plumbing -------------------------------------------------------------------------------

    def _decide(self, what: str, decide: Callable[[], R]) -> R:
        """`decide()` until its recording meets no conflict, within the session's retries."""
        session = current_session()
        with store_edge():
            for attempt in range(session.retries + 1):
                try:
                    return decide()
                except IntegrityError:
                    if attempt < session.retries:
                        session.retried += 1
                        # commands that conflicted tend to conflict again when they retry at
                        # once: up to 1, 2, 4, ... ms apart, at random
                        time.sleep(random.uniform(0, 0.001 * 2**attempt))
        raise VersionConflict(
            f"{what}: a stream it changes moved on {session.retries + 1} times in a row"
        )

    def _load(self, stream: UUID, missing: str):
        try:
            return self.store.repository.get(stream)
        except AggregateNotFoundError:
            raise NotFound(missing) from None

    def _product(self, product_id: int) -> Product:
        return self._load(stream_id(PRODUCT, product_id), f"product {product_id} does not exist")

    def _active_product(self, product_id: int) -> Product:
        product = self._product(product_id)
        if not product.active:
            raise ProductDiscontinued(f"product {product_id} is discontinued")
        return product

    def _order(self, order_id: int) -> Order:
        return self._load(stream_id(ORDER, order_id), f"order {order_id} does not exist")

    def _record(self, *aggregates) -> str:
        """Record the aggregates' new events in one recording; the consistency token of the last."""
        recordings = self.store.save(*aggregates)
        return token(recordings[-1].notification.id)

    def _newest_token(self) -> str:
        return token(self.store.recorder.max_notification_id() or 0)

    def _next_order_id(self) -> int:
        with self.store.recorder.datastore.get_connection() as conn:
            return conn.execute(f"SELECT nextval('{ORDER_IDS}')").fetchone()["nextval"]

    # -- commands -------------------------------------------------------------------------------

    def place_order(self, cmd: c.PlaceOrder) -> r.PlacedOrder:
        def decide() -> r.PlacedOrder:
            try:
                return self._place(cmd)
            except (NotFound, ProductDiscontinued, OutOfStock):
                if (replay := self._replay(cmd.idempotency_key)) is not None:
                    return replay  # the key's first checkout went through: its order answers
                raise

        return self._decide("checkout", decide)

    def _customer_exists(self, customer_id: int) -> None:
        if customer_id not in self._customers:
            self._load(stream_id(CUSTOMER, customer_id), f"customer {customer_id} does not exist")
            self._customers.add(customer_id)

    def _place(self, cmd: c.PlaceOrder) -> r.PlacedOrder:
        self._customer_exists(cmd.customer_id)
        order_id = self._next_order_id()  # before the products: their window stays short
        products = []
        for line in cmd.lines:  # the first line that cannot be supplied says why, as crud's
            product = self._active_product(line.product_id)
            if product.stock < line.quantity:
                raise OutOfStock(
                    f"product {line.product_id} has {product.stock} in stock, "
                    f"{line.quantity} requested"
                )
            products.append(product)
        lines = [
            {
                "line_no": n,
                "product_id": line.product_id,
                "quantity": line.quantity,
                "unit_price_cents": product.price_cents,
            }
            for n, (line, product) in enumerate(zip(cmd.lines, products, strict=True), start=1)
        ]
        total = sum(line["quantity"] * line["unit_price_cents"] for line in lines)
        order = Order(order_id, cmd.customer_id, total, lines, cmd.idempotency_key)
        for line, product in zip(cmd.lines, products, strict=True):
            product.take_stock(order_id, line.quantity)
        try:
            at = self._record(order, Checkout(cmd.idempotency_key, order_id), *products)
        except IntegrityError:
            if (replay := self._replay(cmd.idempotency_key)) is not None:
                return replay  # the key was claimed, earlier or concurrently: its order answers
            raise
        units = sum(line.quantity for line in cmd.lines)
        return r.PlacedOrder(order_id, total, units, order.created_on, token=at)

    def _replay(self, idempotency_key: str) -> r.PlacedOrder | None:
        try:
            claim = self.store.repository.get(checkout_id(idempotency_key))
        except AggregateNotFoundError:
            return None
        order = self._order(claim.order_id)
        units = sum(line["quantity"] for line in order.lines)
        return r.PlacedOrder(
            order.order_id,
            order.total_cents,
            units,
            order.created_on,
            replayed=True,
            token=self._newest_token(),
        )

    def cancel_order(self, cmd: c.CancelOrder) -> r.OrderStatusChanged:
        def decide() -> r.OrderStatusChanged:
            order = self._placed(cmd.order_id, "cancelled")
            order.cancel(version=order.row_version + 1)
            products = [self._product(line["product_id"]) for line in order.lines]
            for line, product in zip(order.lines, products, strict=True):
                product.return_stock(cmd.order_id, line["quantity"])
            return r.OrderStatusChanged(cmd.order_id, "cancelled", self._record(order, *products))

        return self._decide("cancel order", decide)

    def ship_order(self, cmd: c.ShipOrder) -> r.OrderStatusChanged:
        def decide() -> r.OrderStatusChanged:
            order = self._placed(cmd.order_id, "shipped")
            order.ship(version=order.row_version + 1)
            return r.OrderStatusChanged(cmd.order_id, "shipped", self._record(order))

        return self._decide("ship order", decide)

    def _placed(self, order_id: int, becoming: str) -> Order:
        order = self._order(order_id)
        if order.status != "placed":
            raise InvalidTransition(
                f"order {order_id} is {order.status}; only placed orders can be {becoming}"
            )
        return order

    def change_product_price(self, cmd: c.ChangeProductPrice) -> r.ProductState:
        def decide() -> r.ProductState:
            product = self._active_product(cmd.product_id)
            product.change_price(
                product.price_cents, cmd.new_price_cents, cmd.reason, product.row_version + 1
            )
            return _state(product, self._record(product))

        return self._decide("change price", decide)

    def discontinue_product(self, cmd: c.DiscontinueProduct) -> r.ProductState:
        def decide() -> r.ProductState:
            product = self._active_product(cmd.product_id)
            product.discontinue(product.price_cents, product.row_version + 1)
            return _state(product, self._record(product))

        return self._decide("discontinue product", decide)

    def restock_product(self, cmd: c.RestockProduct) -> r.ProductState:
        def decide() -> r.ProductState:
            product = self._active_product(cmd.product_id)
            product.restock(cmd.quantity, product.stock + cmd.quantity)
            return _state(product, self._record(product))

        return self._decide("restock", decide)


def token(notification_id: int) -> str:
    """The consistency token of the event with this notification id (tx_id:position, as the
    outbox's: the notification log is in commit order, so its tx_id part is always 0)."""
    return f"0:{notification_id}"


def _state(product: Product, at: str) -> r.ProductState:
    return r.ProductState(
        product.product_id, product.price_cents, product.stock, product.status, at
    )
