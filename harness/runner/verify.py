"""Before measuring: does the implementation answer what the live tables answer?

The reference answers come from the baseline's queries on the same clone's write model (the normalized
tables every architecture's commands write). A CQRS implementation whose projection has caught up
must give exactly the same answers for every query type; one that does not is not measured. One
with a refresher has its materialized views refreshed first, explicitly (the clone's shifted
timestamps made them stale): its promise is the live answers once refreshed.

the baseline's queries are fast only with the baseline's indexes: on another architecture's clone they are
installed for the verification and dropped after it (measured at sf 1: 0.9 s to build, and the
checks take 1.6 s instead of 18 s), so the measured database keeps only its own indexes.
"""

from __future__ import annotations

import random
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import psycopg
from psycopg import sql

from implementations import registry
from implementations.domain import queries as q
from implementations.interface import Config, Implementation

WINDOWS = {
    "1h": timedelta(hours=1),
    "24h": timedelta(days=1),
    "7d": timedelta(days=7),
    "91d": timedelta(days=91),
}
SAMPLES = 8  # orders and customers checked one by one


@dataclass(frozen=True)
class Check:
    check: str
    matched: bool
    detail: str
    phase: str = "before"  # before measuring (answers), or after it (reconcile.py: read models)


def _sample_ids(dsn: str, table: str, rng: random.Random) -> list[int]:
    with psycopg.connect(dsn, autocommit=True, application_name="cqrs-bench:verify") as conn:
        low, high = conn.execute(f"SELECT min(id), max(id) FROM {table}").fetchone()
    if low is None:
        return []
    return sorted({rng.randint(low, high) for _ in range(SAMPLES)} | {low, high})


def _categories(dsn: str) -> list[str]:
    with psycopg.connect(dsn, autocommit=True, application_name="cqrs-bench:verify") as conn:
        return [r[0] for r in conn.execute("SELECT DISTINCT category FROM products ORDER BY 1")]


def _questions(write_dsn: str, seed: int) -> list[tuple[str, str, tuple, dict]]:
    """(check name, QuerySide method, args, kwargs) covering every query type."""
    rng = random.Random(seed)
    now = datetime.now(UTC)
    out = []
    for label, span in WINDOWS.items():
        window = q.TimeWindow(now - span, now)
        bucket = "minute" if span <= timedelta(days=1) else "hour"
        out += [
            (f"sales_by_category {label}", "sales_by_category", (window,), {}),
            (f"top_products {label}", "top_products", (q.TopProductsQuery(window, 10),), {}),
            (
                f"revenue {label} by {bucket}",
                "revenue_over_time",
                (q.RevenueQuery(window, bucket),),
                {},
            ),
        ]
    for order_id in _sample_ids(write_dsn, "orders", rng):
        out.append((f"order_summary {order_id}", "order_summary", (order_id,), {}))
    for customer_id in _sample_ids(write_dsn, "customers", rng):
        out.append(
            (
                f"customer_orders {customer_id}",
                "customer_orders",
                (q.RecentOrdersQuery(customer_id, 10),),
                {},
            )
        )
    for category in _categories(write_dsn)[:3]:
        out.append(
            (
                f"search {category}",
                "search_products",
                (q.ProductSearch(category, None, None, None, 20),),
                {},
            )
        )
    out.append(
        ("search text+price", "search_products", (q.ProductSearch(None, 500, 5000, "a", 20),), {})
    )
    return out


def _answer(impl: Implementation, method: str, args: tuple, kwargs: dict) -> object:
    try:
        return getattr(impl.queries, method)(*args, **kwargs)
    except Exception as exc:  # an error is an answer too: it must be the same error
        return f"{type(exc).__name__}: {exc}"


def _indexes(dsn: str) -> set[str]:
    with psycopg.connect(dsn, autocommit=True, application_name="cqrs-bench:verify") as conn:
        return {
            r[0]
            for r in conn.execute("SELECT indexname FROM pg_indexes WHERE schemaname = 'public'")
        }


@contextmanager
def _reference_indexes(reference: Implementation, dsn: str) -> Iterator[None]:
    """The reference's indexes on `dsn` while inside; those it added are dropped afterwards."""
    before = _indexes(dsn)
    reference.install()
    added = _indexes(dsn) - before
    try:
        yield
    finally:
        with psycopg.connect(dsn, autocommit=True, application_name="cqrs-bench:verify") as conn:
            for name in sorted(added):
                conn.execute(sql.SQL("DROP INDEX IF EXISTS {}").format(sql.Identifier(name)))


def verify(impl: Implementation, write_dsn: str, seed: int) -> list[Check]:
    """Every query type through `impl` against the baseline on the same write model."""
    reference = registry.create(registry.baseline(), Config(write_dsn, write_dsn, pool_size=2))
    if impl.refresher is not None:
        impl.refresher.refresh()
    with _reference_indexes(reference, write_dsn):
        reference.start()
        try:
            return _checks(impl, reference, write_dsn, seed)
        finally:
            reference.stop()


def _checks(
    impl: Implementation, reference: Implementation, write_dsn: str, seed: int
) -> list[Check]:
    checks = []
    for name, method, args, kwargs in _questions(write_dsn, seed):
        expected = _answer(reference, method, args, kwargs)
        actual = _answer(impl, method, args, kwargs)
        size = len(expected) if isinstance(expected, list) else 1
        detail = (
            f"{size} rows agree"
            if actual == expected
            else f"expected {str(expected)[:300]} got {str(actual)[:300]}"
        )
        checks.append(Check(name, actual == expected, detail))
    return checks
