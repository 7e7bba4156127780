"""Query benchmarks: every query of the domain, per implementation, on its provisioned clone.

CQRS implementations are caught up first, so they read caught-up read models. Each answer is
checked after the timed calls: not empty, and for CQRS equal to what the baseline's queries answer on
the same clone's write model. Dashboards cover the last days of the history (which ends at clone
time), a fixed window that the benchmarks' own checkouts (placed later) never enter.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest

from implementations import registry
from implementations.domain.queries import (
    ProductSearch,
    RecentOrdersQuery,
    RevenueQuery,
    TopProductsQuery,
)
from implementations.interface import Config, Implementation


@pytest.fixture
def reference(target) -> Iterator[Implementation | None]:
    """The baseline's queries on the target's write database (None for the baseline itself)."""
    if target.name == registry.baseline():
        yield None
        return
    baseline = registry.create(
        registry.baseline(), Config(target.dbs.write_dsn, target.dbs.write_dsn, pool_size=1)
    )
    baseline.start()
    yield baseline
    baseline.stop()


@pytest.fixture
def caught_up(target):
    target.catch_up()
    return target


def measure(benchmark, target, reference, operation: str, *args: Any) -> Any:
    """One benchmarked query; its answer, checked against the baseline's where there is a reference."""
    benchmark.group = f"query: {operation}"
    query = getattr(target.impl.queries, operation)
    query(*args)  # warm: pytest-benchmark sizes its rounds on the first timed call
    answer = benchmark(query, *args)
    if reference is not None:
        assert answer == getattr(reference.queries, operation)(*args)
    rows = len(answer) if isinstance(answer, list) else 1
    benchmark.extra_info.update(target.info(operation, rows=rows))
    return answer


def test_order_summary(benchmark, caught_up, reference):
    order_id = caught_up.params.order_id
    summary = measure(benchmark, caught_up, reference, "order_summary", order_id)
    assert summary.order_id == order_id and summary.lines


def test_customer_orders(benchmark, caught_up, reference):
    query = RecentOrdersQuery(caught_up.params.customer_id, 10)
    orders = measure(benchmark, caught_up, reference, "customer_orders", query)
    assert orders.customer_id == query.customer_id and orders.recent and orders.order_count


def test_sales_by_category(benchmark, caught_up, reference):
    sales = measure(benchmark, caught_up, reference, "sales_by_category", caught_up.params.window)
    assert sales and all(s.revenue_cents > 0 for s in sales)


def test_top_products(benchmark, caught_up, reference):
    query = TopProductsQuery(caught_up.params.window, 10)
    top = measure(benchmark, caught_up, reference, "top_products", query)
    assert top and top[0].revenue_cents > 0


def test_revenue_over_time(benchmark, caught_up, reference):
    query = RevenueQuery(caught_up.params.window, "hour")
    points = measure(benchmark, caught_up, reference, "revenue_over_time", query)
    assert points and sum(p.revenue_cents for p in points) > 0


def test_search_products(benchmark, caught_up, reference):
    query = ProductSearch(category=caught_up.params.category)
    hits = measure(benchmark, caught_up, reference, "search_products", query)
    assert hits and all(h.category == query.category for h in hits)
