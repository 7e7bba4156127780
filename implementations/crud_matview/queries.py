"""crud-matview query side: the dashboards read the materialized views (as old as their last
refresh); order summaries, customer orders and search read the live tables, as crud's do."""

from __future__ import annotations

from sqlalchemy import text

from implementations import query_params as bind
from implementations.domain import queries as q
from implementations.domain import results as r
from implementations.live_queries import LiveQueries

SALES_BY_CATEGORY = text("""
    SELECT category, sum(orders), sum(units), sum(revenue_cents)
    FROM mv_category_sales_minute
    WHERE minute >= :since AND minute < :until
    GROUP BY category
    ORDER BY 4 DESC, 1
""")

TOP_PRODUCTS = text("""
    SELECT p.id, p.sku, p.name, p.category, s.units, s.revenue_cents
    FROM (SELECT product_id, sum(units) AS units, sum(revenue_cents) AS revenue_cents
          FROM mv_product_sales_minute
          WHERE minute >= :since AND minute < :until
          GROUP BY product_id) s
    JOIN products p ON p.id = s.product_id
    ORDER BY 6 DESC, 1
    LIMIT :limit
""")

REVENUE_OVER_TIME = text("""
    SELECT date_trunc(:bucket, minute), sum(orders), sum(revenue_cents)
    FROM mv_revenue_minute
    WHERE minute >= :since AND minute < :until
    GROUP BY 1
    ORDER BY 1
""")


class MatviewQueries(LiveQueries):
    """Consistency tokens are accepted and ignored (commands return none, as crud's): the
    dashboards promise the live tables' answers once the views are refreshed, and the explicit
    way to that is `impl.refresher.refresh()`."""

    def sales_by_category(
        self, window: q.TimeWindow, *, after: str | None = None
    ) -> list[r.CategorySales]:
        rows = self._all(SALES_BY_CATEGORY, bind.window(window))
        return [r.CategorySales(c, int(n), int(u), int(v)) for c, n, u, v in rows]

    def top_products(
        self, query: q.TopProductsQuery, *, after: str | None = None
    ) -> list[r.ProductRevenue]:
        return [
            r.ProductRevenue(pid, sku, name, cat, int(units), int(rev))
            for pid, sku, name, cat, units, rev in self._all(TOP_PRODUCTS, bind.top_products(query))
        ]

    def revenue_over_time(
        self, query: q.RevenueQuery, *, after: str | None = None
    ) -> list[r.RevenuePoint]:
        return [
            r.RevenuePoint(at, int(n), int(rev))
            for at, n, rev in self._all(REVENUE_OVER_TIME, bind.revenue(query))
        ]
