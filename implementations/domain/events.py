"""Domain events the CQRS variants publish through the outbox, and their payload schemas.

An outbox row is an envelope (position, tx_id, event_type, occurred_at) around a payload. The event
time lives in the envelope's occurred_at, not in the payload: OrderPlaced happened at placed_at.

An event that changes a product's price or status, or an order's status, carries the row's new
`version` and the row's whole last-writer-wins state at that version (a product's price and
status, an order's status): the projector reads events in transaction-id order, which is not
commit order, and keeps a row's newest version. ProductAdded and OrderPlaced create version 1.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from functools import cache
from typing import Any

from pydantic import TypeAdapter


class Event:
    pass


@dataclass(frozen=True)
class CustomerRegistered(Event):
    customer_id: int
    name: str
    email: str


@dataclass(frozen=True)
class ProductAdded(Event):
    product_id: int
    sku: str
    name: str
    category: str
    price_cents: int
    stock: int


@dataclass(frozen=True)
class PlacedLine:
    line_no: int
    product_id: int
    quantity: int
    unit_price_cents: int


@dataclass(frozen=True)
class OrderPlaced(Event):
    order_id: int
    customer_id: int
    total_cents: int
    lines: tuple[PlacedLine, ...]


@dataclass(frozen=True)
class OrderCancelled(Event):
    order_id: int
    version: int


@dataclass(frozen=True)
class OrderShipped(Event):
    order_id: int
    version: int


@dataclass(frozen=True)
class ProductPriceChanged(Event):
    product_id: int
    old_price_cents: int
    new_price_cents: int
    reason: str
    version: int  # the product is active at this version (a price change requires it)


@dataclass(frozen=True)
class ProductDiscontinued(Event):
    product_id: int
    price_cents: int  # the price at this version
    version: int


@dataclass(frozen=True)
class ProductRestocked(Event):
    product_id: int
    quantity: int
    stock: int  # stock after the restock


EVENT_TYPES: dict[str, type[Event]] = {
    cls.__name__: cls
    for cls in (
        CustomerRegistered,
        ProductAdded,
        OrderPlaced,
        OrderCancelled,
        OrderShipped,
        ProductPriceChanged,
        ProductDiscontinued,
        ProductRestocked,
    )
}


def event_type(event: Event) -> str:
    return type(event).__name__


def to_payload(event: Event) -> dict[str, Any]:
    return dataclasses.asdict(event)


@cache
def _adapter(name: str) -> TypeAdapter:
    return TypeAdapter(EVENT_TYPES[name])


def from_payload(name: str, payload: dict[str, Any]) -> Event:
    """Parse and validate a payload against its event type's schema."""
    return _adapter(name).validate_python(payload, strict=False)


def payload_schema(name: str) -> dict[str, Any]:
    """The JSON Schema of an event type's payload."""
    return _adapter(name).json_schema()
