"""The query side of both CQRS variants: reads only the read models, never the write model.

A query given a consistency token first waits (bounded) until the projection covers it.
"""

from __future__ import annotations

from sqlalchemy import Engine, text

from implementations import query_params as bind
from implementations.db import driver, read
from implementations.domain import queries as q
from implementations.domain import results as r
from implementations.domain.errors import NotFound, NotYetVisible
from implementations.projector import checkpoint
from implementations.projector.engine import PROJECTION
from implementations.projector.positions import parse_token

ORDER = text("""
    SELECT order_id, customer_id, customer_name, status, total_cents, item_count, placed_at
    FROM rm_orders WHERE order_id = :order_id
""")
ORDER_LINES = text("""
    SELECT line_no, product_id, sku, product_name, quantity, unit_price_cents
    FROM rm_order_lines WHERE order_id = :order_id ORDER BY line_no
""")
CUSTOMER = text("""
    SELECT name, order_count, total_spent_cents, last_order_at
    FROM rm_customers WHERE customer_id = :customer_id
""")
RECENT_ORDERS = text("""
    SELECT order_id, status, total_cents, item_count, placed_at FROM rm_orders
    WHERE customer_id = :customer_id ORDER BY placed_at DESC, order_id DESC LIMIT :limit
""")
SALES_BY_CATEGORY = text("""
    SELECT category, sum(orders), sum(units), sum(revenue_cents)
    FROM rm_category_sales_minute WHERE minute >= :since AND minute < :until
    GROUP BY category HAVING sum(orders) > 0
    ORDER BY 4 DESC, 1
""")
TOP_PRODUCTS = text("""
    SELECT p.product_id, p.sku, p.name, p.category, s.units, s.revenue
    FROM (SELECT product_id, sum(units) AS units, sum(revenue_cents) AS revenue
          FROM rm_product_sales_minute WHERE minute >= :since AND minute < :until
          GROUP BY product_id HAVING sum(units) > 0) s
    JOIN rm_products p ON p.product_id = s.product_id
    ORDER BY s.revenue DESC, p.product_id
    LIMIT :limit
""")
REVENUE_OVER_TIME = text("""
    SELECT date_trunc(:bucket, minute), sum(orders), sum(revenue_cents)
    FROM rm_revenue_minute WHERE minute >= :since AND minute < :until
    GROUP BY 1 HAVING sum(orders) > 0
    ORDER BY 1
""")
SEARCH_PRODUCTS = text(r"""
    SELECT product_id, sku, name, category, price_cents, units_sold
    FROM rm_products
    WHERE active
      AND (CAST(:category AS text) IS NULL OR category = :category)
      AND (CAST(:min_price AS bigint) IS NULL OR price_cents >= :min_price)
      AND (CAST(:max_price AS bigint) IS NULL OR price_cents <= :max_price)
      AND (CAST(:pattern AS text) IS NULL
           OR name ILIKE :pattern ESCAPE '\' OR sku ILIKE :pattern ESCAPE '\')
    ORDER BY units_sold DESC, product_id
    LIMIT :limit
""")


class ReadModelQueries:
    """The queries on the read models. With `tokens`, a query given a consistency token waits
    (up to `wait_bound` seconds) until the projection's checkpoint covers it; without, tokens are
    ignored (read models updated in the command's own transaction are never behind)."""

    def __init__(self, engine: Engine, *, wait_bound: float = 5.0, tokens: bool = True) -> None:
        self.engine, self.wait_bound, self.tokens = engine, wait_bound, tokens

    def _run(self, after: str | None, work):
        def guarded(conn):
            if after is not None and self.tokens:
                token = parse_token(after)
                if not checkpoint.wait_until_covered(
                    driver(conn), PROJECTION, token, self.wait_bound
                ):
                    raise NotYetVisible(
                        f"the read models had not caught up with token {after} after "
                        f"{self.wait_bound:g}s",
                        self.wait_bound,
                    )
            return work(conn)

        return read(self.engine, guarded)

    def _all(self, statement, params: dict, after: str | None) -> list:
        return self._run(after, lambda conn: conn.execute(statement, params).all())

    def order_summary(self, order_id: int, *, after: str | None = None) -> r.OrderSummary:
        def work(conn):
            return (
                conn.execute(ORDER, {"order_id": order_id}).first(),
                conn.execute(ORDER_LINES, {"order_id": order_id}).all(),
            )

        head, lines = self._run(after, work)
        if head is None:
            raise NotFound(f"order {order_id} does not exist")
        return r.OrderSummary(*head, lines=tuple(r.SummaryLine(*row) for row in lines))

    def customer_orders(
        self, query: q.RecentOrdersQuery, *, after: str | None = None
    ) -> r.CustomerOrders:
        def work(conn):
            params = {"customer_id": query.customer_id, "limit": query.limit}
            return (
                conn.execute(CUSTOMER, params).first(),
                conn.execute(RECENT_ORDERS, params).all(),
            )

        customer, recent = self._run(after, work)
        if customer is None:
            raise NotFound(f"customer {query.customer_id} does not exist")
        name, count, spent, last = customer
        briefs = tuple(r.OrderBrief(*row) for row in recent)
        return r.CustomerOrders(query.customer_id, name, count, spent, last, briefs)

    def sales_by_category(
        self, window: q.TimeWindow, *, after: str | None = None
    ) -> list[r.CategorySales]:
        rows = self._all(SALES_BY_CATEGORY, bind.window(window), after)
        return [r.CategorySales(cat, int(n), int(u), int(rev)) for cat, n, u, rev in rows]

    def top_products(
        self, query: q.TopProductsQuery, *, after: str | None = None
    ) -> list[r.ProductRevenue]:
        return [
            r.ProductRevenue(pid, sku, name, cat, int(units), int(rev))
            for pid, sku, name, cat, units, rev in self._all(
                TOP_PRODUCTS, bind.top_products(query), after
            )
        ]

    def revenue_over_time(
        self, query: q.RevenueQuery, *, after: str | None = None
    ) -> list[r.RevenuePoint]:
        rows = self._all(REVENUE_OVER_TIME, bind.revenue(query), after)
        return [r.RevenuePoint(at, int(n), int(rev)) for at, n, rev in rows]

    def search_products(
        self, query: q.ProductSearch, *, after: str | None = None
    ) -> list[r.ProductHit]:
        return [r.ProductHit(*row) for row in self._all(SEARCH_PRODUCTS, bind.search(query), after)]
