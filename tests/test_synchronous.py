"""The architecture whose read models are updated in the command's own transaction: a command's
effect is in the read models when it returns, a failed command leaves them untouched, and
concurrent checkouts contending for the same aggregate rows leave them exact."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import psycopg
import pytest

from harness.runner.reconcile import READ_MODELS, reconcile
from implementations import registry
from implementations.domain.commands import OrderLine, PlaceOrder, RestockProduct
from implementations.domain.errors import OutOfStock
from implementations.domain.queries import TimeWindow
from tests.conftest import table_digest

SYNCHRONOUS = [a.name for a in registry.architectures().values() if a.read_model == "synchronous"]
READ_TABLES = tuple(model.table for model in READ_MODELS)


@pytest.fixture(params=SYNCHRONOUS)
def synchronous(request, start_on_contract):
    return start_on_contract(request.param)


def test_a_command_is_in_the_read_models_when_it_returns(synchronous) -> None:
    placed = synchronous.commands.place_order(
        PlaceOrder(
            1,
            (
                OrderLine(1, 2),
                OrderLine(3, 1),
            ),
            "sync-visible",
        )
    )
    assert placed.token is None  # nothing to wait for
    summary = synchronous.queries.order_summary(placed.order_id)  # no token, no wait
    assert summary.total_cents == placed.total_cents and summary.item_count == 3
    window = TimeWindow(placed.placed_at, placed.placed_at + timedelta(minutes=1))
    sales = {s.category: s for s in synchronous.queries.sales_by_category(window)}
    assert sales["kitchen"].revenue_cents == 2 * 2500 and sales["office"].revenue_cents == 4000


def test_a_failed_command_leaves_the_read_models_untouched(synchronous) -> None:
    dsn = synchronous.config.write_dsn
    before = table_digest(dsn, READ_TABLES)
    with pytest.raises(OutOfStock):  # the pen has 2 in stock: the kettle line is written first
        synchronous.commands.place_order(
            PlaceOrder(
                1,
                (
                    OrderLine(1, 1),
                    OrderLine(4, 3),
                ),
                "sync-refused",
            )
        )
    assert table_digest(dsn, READ_TABLES) == before


def test_concurrent_checkouts_on_the_same_rows_leave_exact_read_models(synchronous) -> None:
    """Eight clients place orders of the same two products at once: every one updates the same
    per-minute category, product and revenue rows in its transaction (waiting on each other's
    row locks, deadlocks retried); afterwards every read-model row equals its recomputation from
    the write model."""
    for product in (2, 3):
        synchronous.commands.restock_product(RestockProduct(product, 1000))

    def shop(client: int) -> int:
        for n in range(15):
            synchronous.commands.place_order(
                PlaceOrder(
                    1 + n % 2,
                    (
                        OrderLine(2, 1),
                        OrderLine(3, 1),
                    ),
                    f"sync-{client}-{n}",
                )
            )
        return 15

    with ThreadPoolExecutor(8) as pool:
        assert sum(pool.map(shop, range(8))) == 120
    dsn = synchronous.config.write_dsn
    checks = reconcile(dsn, dsn)
    assert [c for c in checks if not c.matched] == [], checks
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT count(*) FROM rm_orders").fetchone()[0] >= 120
