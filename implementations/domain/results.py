"""What commands return and what queries answer: plain values, identical for every implementation."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import computed_field
from pydantic.dataclasses import dataclass as derived_dataclass

OrderStatus = Literal["placed", "shipped", "cancelled"]
ProductStatus = Literal["active", "discontinued"]


@dataclass(frozen=True)
class PlacedOrder:
    order_id: int
    total_cents: int
    item_count: int
    placed_at: datetime
    replayed: bool = False  # True when the idempotency key had already placed this order
    token: str | None = None  # consistency token for read-your-writes (CQRS variants)


@dataclass(frozen=True)
class OrderStatusChanged:
    order_id: int
    status: OrderStatus
    token: str | None = None


@dataclass(frozen=True)
class ProductState:
    product_id: int
    price_cents: int
    stock: int
    status: ProductStatus
    token: str | None = None


# Types with derived values are pydantic dataclasses so the API serializes the derived fields.
@derived_dataclass(frozen=True)
class SummaryLine:
    line_no: int
    product_id: int
    sku: str
    product_name: str
    quantity: int
    unit_price_cents: int

    @computed_field
    @property
    def line_total_cents(self) -> int:
        return self.quantity * self.unit_price_cents


@dataclass(frozen=True)
class OrderSummary:
    order_id: int
    customer_id: int
    customer_name: str
    status: OrderStatus
    total_cents: int
    item_count: int  # units over all lines
    placed_at: datetime
    lines: tuple[SummaryLine, ...]


@dataclass(frozen=True)
class OrderBrief:
    order_id: int
    status: OrderStatus
    total_cents: int
    item_count: int
    placed_at: datetime


@derived_dataclass(frozen=True)
class CustomerOrders:
    """A customer's newest orders (any status) and stats over their non-cancelled orders."""

    customer_id: int
    customer_name: str
    order_count: int
    total_spent_cents: int
    last_order_at: datetime | None
    recent: tuple[OrderBrief, ...]

    @computed_field
    @property
    def average_order_cents(self) -> int:
        """Floor of total_spent_cents / order_count; 0 without orders."""
        return self.total_spent_cents // self.order_count if self.order_count else 0


@dataclass(frozen=True)
class CategorySales:
    category: str
    orders: int
    units: int
    revenue_cents: int


@dataclass(frozen=True)
class ProductRevenue:
    product_id: int
    sku: str
    name: str
    category: str
    units: int
    revenue_cents: int


@dataclass(frozen=True)
class RevenuePoint:
    bucket_start: datetime
    orders: int
    revenue_cents: int


@dataclass(frozen=True)
class ProductHit:
    product_id: int
    sku: str
    name: str
    category: str
    price_cents: int
    units_sold: int
