"""Commands: what a caller wants the system to do. Validated on construction (InvalidInput)."""

from __future__ import annotations

from dataclasses import dataclass

from implementations.domain import validation as v
from implementations.domain.errors import InvalidInput

MAX_LINES = 50
MAX_QUANTITY = 100
MAX_PRICE_CENTS = 100_000_000
MAX_RESTOCK = 1_000_000
MAX_TEXT = 200  # characters of an idempotency key or a price change's reason


class Command:
    pass


@dataclass(frozen=True)
class OrderLine:
    product_id: int
    quantity: int

    def __post_init__(self) -> None:
        v.entity_id("product_id", self.product_id)
        v.int_in("quantity", self.quantity, 1, MAX_QUANTITY)


@dataclass(frozen=True)
class PlaceOrder(Command):
    """The checkout: all lines or nothing; the same idempotency key returns the first order."""

    customer_id: int
    lines: tuple[OrderLine, ...]
    idempotency_key: str

    def __post_init__(self) -> None:
        v.entity_id("customer_id", self.customer_id)
        v.text("idempotency_key", self.idempotency_key, MAX_TEXT)
        if not isinstance(self.lines, tuple) or not 1 <= len(self.lines) <= MAX_LINES:
            raise InvalidInput(f"an order has 1 to {MAX_LINES} lines")
        if not all(isinstance(line, OrderLine) for line in self.lines):
            raise InvalidInput("lines must be OrderLine values")
        if len({line.product_id for line in self.lines}) != len(self.lines):
            raise InvalidInput("each product may appear on one line of an order only")


@dataclass(frozen=True)
class CancelOrder(Command):
    order_id: int

    def __post_init__(self) -> None:
        v.entity_id("order_id", self.order_id)


@dataclass(frozen=True)
class ShipOrder(Command):
    order_id: int

    def __post_init__(self) -> None:
        v.entity_id("order_id", self.order_id)


@dataclass(frozen=True)
class ChangeProductPrice(Command):
    product_id: int
    new_price_cents: int
    reason: str

    def __post_init__(self) -> None:
        v.entity_id("product_id", self.product_id)
        v.int_in("new_price_cents", self.new_price_cents, 1, MAX_PRICE_CENTS)
        v.text("reason", self.reason, MAX_TEXT)


@dataclass(frozen=True)
class DiscontinueProduct(Command):
    product_id: int

    def __post_init__(self) -> None:
        v.entity_id("product_id", self.product_id)


@dataclass(frozen=True)
class RestockProduct(Command):
    product_id: int
    quantity: int

    def __post_init__(self) -> None:
        v.entity_id("product_id", self.product_id)
        v.int_in("quantity", self.quantity, 1, MAX_RESTOCK)
