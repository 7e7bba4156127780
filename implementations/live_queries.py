"""Queries on the live normalized write tables: crud's query side, and those crud-matview keeps
on the live tables (order summaries, customer orders, search), and crud-replica's on a standby's
copy of the same tables."""

from __future__ import annotations

from collections.abc import Callable

from sqlalchemy import Connection, Engine, text

from implementations import query_params as bind
from implementations.db import read
from implementations.domain import queries as q
from implementations.domain import results as r
from implementations.domain.errors import NotFound

ORDER_SUMMARY = text("""
    SELECT o.id, o.customer_id, c.name, o.status, o.total_cents, o.placed_at,
           l.line_no, l.product_id, p.sku, p.name, l.quantity, l.unit_price_cents
    FROM orders o
    JOIN customers c ON c.id = o.customer_id
    JOIN order_lines l ON l.order_id = o.id
    JOIN products p ON p.id = l.product_id
    WHERE o.id = :order_id
    ORDER BY l.line_no
""")

CUSTOMER_STATS = text("""
    SELECT c.name, count(o.id), coalesce(sum(o.total_cents), 0), max(o.placed_at)
    FROM customers c
    LEFT JOIN orders o ON o.customer_id = c.id AND o.status <> 'cancelled'
    WHERE c.id = :customer_id
    GROUP BY c.id
""")

RECENT_ORDERS = text("""
    SELECT o.id, o.status, o.total_cents,
           (SELECT sum(l.quantity) FROM order_lines l WHERE l.order_id = o.id), o.placed_at
    FROM orders o
    WHERE o.customer_id = :customer_id
    ORDER BY o.placed_at DESC, o.id DESC
    LIMIT :limit
""")

SALES_BY_CATEGORY = text("""
    SELECT p.category, count(DISTINCT o.id), sum(l.quantity), sum(l.quantity * l.unit_price_cents)
    FROM orders o
    JOIN order_lines l ON l.order_id = o.id
    JOIN products p ON p.id = l.product_id
    WHERE o.placed_at >= :since AND o.placed_at < :until AND o.status <> 'cancelled'
    GROUP BY p.category
    ORDER BY 4 DESC, 1
""")

TOP_PRODUCTS = text("""
    SELECT p.id, p.sku, p.name, p.category, sum(l.quantity), sum(l.quantity * l.unit_price_cents)
    FROM orders o
    JOIN order_lines l ON l.order_id = o.id
    JOIN products p ON p.id = l.product_id
    WHERE o.placed_at >= :since AND o.placed_at < :until AND o.status <> 'cancelled'
    GROUP BY p.id
    ORDER BY 6 DESC, 1
    LIMIT :limit
""")

REVENUE_OVER_TIME = text("""
    SELECT date_trunc(:bucket, o.placed_at), count(*), sum(o.total_cents)
    FROM orders o
    WHERE o.placed_at >= :since AND o.placed_at < :until AND o.status <> 'cancelled'
    GROUP BY 1
    ORDER BY 1
""")

SEARCH_PRODUCTS = text(r"""
    SELECT p.id, p.sku, p.name, p.category, p.price_cents, coalesce(s.units, 0)
    FROM products p
    LEFT JOIN LATERAL (
        SELECT sum(l.quantity) AS units
        FROM order_lines l JOIN orders o ON o.id = l.order_id
        WHERE l.product_id = p.id AND o.status <> 'cancelled'
    ) s ON true
    WHERE p.status = 'active'
      AND (CAST(:category AS text) IS NULL OR p.category = :category)
      AND (CAST(:min_price AS bigint) IS NULL OR p.price_cents >= :min_price)
      AND (CAST(:max_price AS bigint) IS NULL OR p.price_cents <= :max_price)
      AND (CAST(:pattern AS text) IS NULL
           OR p.name ILIKE :pattern ESCAPE '\' OR p.sku ILIKE :pattern ESCAPE '\')
    ORDER BY 6 DESC, 1
    LIMIT :limit
""")


# Called with a query's connection, its consistency token and how long it may wait, before the
# query runs: returns once what the token names is visible there (or raises NotYetVisible).
WaitVisible = Callable[[Connection, str, float], None]


class LiveQueries:
    """Without `wait_visible`, consistency tokens are accepted and ignored: the live tables are
    always current; with it (tables read on a copy, such as a standby), a query given a token
    first waits on its connection, at most `wait_bound` seconds. A subclass may read the
    dashboards elsewhere by replacing their statements (same columns)."""

    SALES_BY_CATEGORY = SALES_BY_CATEGORY
    TOP_PRODUCTS = TOP_PRODUCTS
    REVENUE_OVER_TIME = REVENUE_OVER_TIME

    def __init__(
        self, engine: Engine, wait_visible: WaitVisible | None = None, wait_bound: float = 5.0
    ) -> None:
        self.engine, self.wait_visible, self.wait_bound = engine, wait_visible, wait_bound

    def _read(self, after: str | None, work: Callable[[Connection], object]):
        def guarded(conn: Connection):
            if after and self.wait_visible:
                self.wait_visible(conn, after, self.wait_bound)
            return work(conn)

        return read(self.engine, guarded)

    def _all(self, statement, params: dict, after: str | None) -> list:
        return self._read(after, lambda conn: conn.execute(statement, params).all())

    def order_summary(self, order_id: int, *, after: str | None = None) -> r.OrderSummary:
        rows = self._all(ORDER_SUMMARY, {"order_id": order_id}, after)
        if not rows:
            raise NotFound(f"order {order_id} does not exist")
        head = rows[0]
        lines = tuple(r.SummaryLine(*row[6:]) for row in rows)
        return r.OrderSummary(
            order_id=head[0],
            customer_id=head[1],
            customer_name=head[2],
            status=head[3],
            total_cents=head[4],
            item_count=sum(line.quantity for line in lines),
            placed_at=head[5],
            lines=lines,
        )

    def customer_orders(
        self, query: q.RecentOrdersQuery, *, after: str | None = None
    ) -> r.CustomerOrders:
        def work(conn):
            stats = conn.execute(CUSTOMER_STATS, {"customer_id": query.customer_id}).first()
            recent = conn.execute(
                RECENT_ORDERS, {"customer_id": query.customer_id, "limit": query.limit}
            ).all()
            return stats, recent

        stats, recent = self._read(after, work)
        if stats is None:
            raise NotFound(f"customer {query.customer_id} does not exist")
        name, count, spent, last = stats
        briefs = tuple(
            r.OrderBrief(oid, st, total, int(units), at) for oid, st, total, units, at in recent
        )
        return r.CustomerOrders(query.customer_id, name, count, int(spent), last, briefs)

    def sales_by_category(
        self, window: q.TimeWindow, *, after: str | None = None
    ) -> list[r.CategorySales]:
        rows = self._all(self.SALES_BY_CATEGORY, bind.window(window), after)
        return [r.CategorySales(cat, n, int(units), int(rev)) for cat, n, units, rev in rows]

    def top_products(
        self, query: q.TopProductsQuery, *, after: str | None = None
    ) -> list[r.ProductRevenue]:
        return [
            r.ProductRevenue(pid, sku, name, cat, int(units), int(rev))
            for pid, sku, name, cat, units, rev in self._all(
                self.TOP_PRODUCTS, bind.top_products(query), after
            )
        ]

    def revenue_over_time(
        self, query: q.RevenueQuery, *, after: str | None = None
    ) -> list[r.RevenuePoint]:
        return [
            r.RevenuePoint(at, n, int(rev))
            for at, n, rev in self._all(self.REVENUE_OVER_TIME, bind.revenue(query), after)
        ]

    def search_products(
        self, query: q.ProductSearch, *, after: str | None = None
    ) -> list[r.ProductHit]:
        return [
            r.ProductHit(*row[:5], int(row[5]))
            for row in self._all(SEARCH_PRODUCTS, bind.search(query), after)
        ]
