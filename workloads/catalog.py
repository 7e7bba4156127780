"""What the load may ask for: customer and product ids, categories and the order id range.

Read once from a write-model database (a dataset clone) before a run, or passed inline as JSON,
so every Locust process and every architecture draws from the same lists.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass

import psycopg

RETIRED_SHARE = 0.02  # the last active ids (at least one), for the merchandiser only


@dataclass(frozen=True)
class Catalog:
    customers: list[int]
    products: list[int]  # active products shoppers buy
    retired: list[int]  # active products only the merchandiser touches (discontinue)
    categories: list[str]
    first_order_id: int
    newest_order_id: int  # 0 when there are no orders

    def __post_init__(self) -> None:
        if not self.customers:
            raise ValueError("catalog has no customers")
        if not self.products:
            raise ValueError("catalog has no active products for shoppers")
        if set(self.products) & set(self.retired):
            raise ValueError("catalog: a retired product is also in products")

    @classmethod
    def from_database(cls, dsn: str) -> Catalog:
        with psycopg.connect(dsn, connect_timeout=10) as conn:
            customers = [r[0] for r in conn.execute("SELECT id FROM customers ORDER BY id")]
            active = [
                r[0]
                for r in conn.execute("SELECT id FROM products WHERE status = 'active' ORDER BY id")
            ]
            categories = [
                r[0]
                for r in conn.execute(
                    "SELECT DISTINCT category FROM products WHERE status = 'active' ORDER BY 1"
                )
            ]
            first, newest = conn.execute(
                "SELECT coalesce(min(id), 0), coalesce(max(id), 0) FROM orders"
            ).fetchone()
        retired = max(1, round(len(active) * RETIRED_SHARE)) if len(active) > 1 else 0
        return cls(
            customers,
            active[: len(active) - retired],
            active[len(active) - retired :],
            categories,
            first,
            newest,
        )

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> Catalog:
        try:
            return cls(**data)
        except TypeError as exc:
            raise ValueError(f"catalog: {exc}") from exc

    def to_json(self) -> str:
        return json.dumps(self.to_dict())

    @classmethod
    def from_json(cls, text: str) -> Catalog:
        return cls.from_dict(json.loads(text))
