"""crud-matview query side: the dashboards read the materialized views (as old as their last
refresh); order summaries, customer orders and search read the live tables, as crud's do."""

from __future__ import annotations

from sqlalchemy import text

from implementations.live_queries import LiveQueries

SALES_BY_CATEGORY = text("""
    SELECT category, sum(orders)::bigint, sum(units), sum(revenue_cents)
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
    SELECT date_trunc(:bucket, minute), sum(orders)::bigint, sum(revenue_cents)
    FROM mv_revenue_minute
    WHERE minute >= :since AND minute < :until
    GROUP BY 1
    ORDER BY 1
""")


class MatviewQueries(LiveQueries):
    """The live queries, with the dashboards' statements on the views. Consistency tokens are
    accepted and ignored (commands return none, as crud's): the dashboards promise the live
    tables' answers once the views are refreshed, and the explicit way to that is
    `impl.refresher.refresh()`."""

    SALES_BY_CATEGORY = SALES_BY_CATEGORY
    TOP_PRODUCTS = TOP_PRODUCTS
    REVENUE_OVER_TIME = REVENUE_OVER_TIME
