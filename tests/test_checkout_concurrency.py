"""Checkout under concurrency on crud: no overselling, one order per idempotency key."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import psycopg

from implementations.domain.commands import OrderLine, PlaceOrder
from implementations.domain.errors import OutOfStock


def _race(calls: int, action):
    """Run `action(i)` from `calls` threads released at the same moment; results or exceptions."""
    barrier = threading.Barrier(calls)

    def run(i):
        barrier.wait()
        try:
            return action(i)
        except Exception as exc:  # noqa: BLE001 - the test inspects what each caller got
            return exc

    with ThreadPoolExecutor(calls) as pool:
        return list(pool.map(run, range(calls)))


def _scalar(dsn: str, query: str):
    with psycopg.connect(dsn) as conn:
        return conn.execute(query).fetchone()[0]


def test_twenty_checkouts_on_stock_ten_sell_exactly_ten(crud):
    # Product 1 of the contract catalog has stock 10; each checkout takes 1 of it and 1 mug.
    outcomes = _race(
        20,
        lambda i: crud.commands.place_order(
            PlaceOrder(1 + i % 2, (OrderLine(2, 1), OrderLine(1, 1)), f"race-{i}")
        ),
    )
    placed = [o for o in outcomes if not isinstance(o, Exception)]
    refused = [o for o in outcomes if isinstance(o, Exception)]
    assert len(placed) == 10
    assert all(isinstance(e, OutOfStock) for e in refused), refused
    dsn = crud.config.write_dsn
    assert _scalar(dsn, "SELECT stock FROM products WHERE id = 1") == 0
    assert _scalar(dsn, "SELECT stock FROM products WHERE id = 2") == 50 - 10
    assert _scalar(dsn, "SELECT count(*) FROM orders") == 10
    assert _scalar(dsn, "SELECT count(*) FROM order_lines WHERE product_id = 1") == 10


def test_concurrent_retries_with_one_key_create_one_order(crud):
    cmd = PlaceOrder(1, (OrderLine(3, 1),), "same-key")
    outcomes = _race(12, lambda i: crud.commands.place_order(cmd))
    assert not [o for o in outcomes if isinstance(o, Exception)], outcomes
    assert len({o.order_id for o in outcomes}) == 1
    assert sum(not o.replayed for o in outcomes) == 1
    dsn = crud.config.write_dsn
    assert _scalar(dsn, "SELECT count(*) FROM orders") == 1
    assert _scalar(dsn, "SELECT stock FROM products WHERE id = 3") == 5 - 1


def test_crossing_multi_line_checkouts_neither_fail_nor_oversell(crud):
    # Lines name the same products in opposite orders; locks are taken in id order regardless.
    def checkout(i):
        lines = (OrderLine(1, 1), OrderLine(2, 1)) if i % 2 else (OrderLine(2, 1), OrderLine(1, 1))
        return crud.commands.place_order(PlaceOrder(1, lines, f"cross-{i}"))

    outcomes = _race(16, checkout)
    placed = [o for o in outcomes if not isinstance(o, Exception)]
    assert len(placed) == 10  # product 1 has stock 10
    assert all(isinstance(o, OutOfStock) for o in outcomes if isinstance(o, Exception))
    assert _scalar(crud.config.write_dsn, "SELECT stock FROM products WHERE id = 1") == 0
