"""Command benchmarks: every command, per implementation, one command per round (pedantic).

Each round's setup (not timed) gives the command fresh arguments: a new idempotency key, a newly
placed order to cancel or ship, a new price, the next product to discontinue, so every round
really changes state. Results are checked after the timed calls, in the database too. For CQRS
the timed call includes the outbox append, in the same transaction: that is what it costs.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from harness.bench.driver import LINES_PER_ORDER
from implementations import registry
from implementations.domain.commands import (
    CancelOrder,
    ChangeProductPrice,
    Command,
    DiscontinueProduct,
    RestockProduct,
    ShipOrder,
)


def pedantic(
    benchmark, target, operation: str, command: Callable[[], Command], rounds: int, warmup: int
):
    """Time `operation` once per round on a fresh command from `command()`; the last result."""
    benchmark.group = f"command: {operation}"
    benchmark.extra_info.update(target.info(operation))
    method = getattr(target.impl.commands, operation)
    return benchmark.pedantic(
        method, setup=lambda: ((command(),), {}), rounds=rounds, warmup_rounds=warmup, iterations=1
    )


def _orders_with_prefix(target, prefix: str) -> dict[str, int]:
    """Statuses (and line counts) of the orders this test placed."""
    with target.write_model() as conn:
        rows = conn.execute(
            "SELECT o.status, count(*), count(*) FILTER (WHERE (SELECT count(*) FROM order_lines l"
            " WHERE l.order_id = o.id) = %s) FROM orders o WHERE idempotency_key LIKE %s"
            " GROUP BY o.status",
            (LINES_PER_ORDER, prefix + "%"),
        ).fetchall()
    counts = {status: n for status, n, _ in rows}
    counts["with_all_lines"] = sum(full for _, _, full in rows)
    return counts


def test_checkout(benchmark, target, inputs, rounds):
    placed = pedantic(
        benchmark, target, "place_order", inputs.orders.next, rounds(300), rounds(20, 0)
    )
    assert not placed.replayed and placed.item_count == LINES_PER_ORDER
    # a token where queries can lag: CQRS (appended events), a standby reader (a WAL position)
    lags = target.impl.projection is not None or registry.architecture(target.name).reads_standby
    assert (placed.token is not None) == lags
    assert _orders_with_prefix(target, inputs.orders.prefix) == {
        "placed": inputs.orders.issued,
        "with_all_lines": inputs.orders.issued,
    }


def _placed_order(inputs, target) -> int:
    return target.impl.commands.place_order(inputs.orders.next()).order_id


def test_cancel_order(benchmark, target, inputs, rounds):
    def command() -> CancelOrder:
        return CancelOrder(_placed_order(inputs, target))

    changed = pedantic(benchmark, target, "cancel_order", command, rounds(100), rounds(5, 0))
    assert changed.status == "cancelled"
    assert _orders_with_prefix(target, inputs.orders.prefix) == {
        "cancelled": inputs.orders.issued,
        "with_all_lines": inputs.orders.issued,
    }


def test_ship_order(benchmark, target, inputs, rounds):
    def command() -> ShipOrder:
        return ShipOrder(_placed_order(inputs, target))

    changed = pedantic(benchmark, target, "ship_order", command, rounds(100), rounds(5, 0))
    assert changed.status == "shipped"
    assert _orders_with_prefix(target, inputs.orders.prefix) == {
        "shipped": inputs.orders.issued,
        "with_all_lines": inputs.orders.issued,
    }


def test_change_product_price(benchmark, target, inputs, rounds):
    prices = iter(range(1_000, 10**6))
    product = inputs.products[0]
    last: list[int] = []

    def command() -> ChangeProductPrice:
        last.append(next(prices))
        return ChangeProductPrice(product, last[-1], "benchmark")

    state = pedantic(benchmark, target, "change_product_price", command, rounds(100), rounds(5, 0))
    assert (state.product_id, state.price_cents) == (product, last[-1])
    with target.write_model() as conn:
        history = conn.execute(
            "SELECT count(*) FROM price_history"
            " WHERE product_id = %s AND new_price_cents = ANY(%s)",
            (product, last),
        ).fetchone()[0]
    assert history == len(last)


def test_restock_product(benchmark, target, inputs, rounds):
    product = inputs.products[-1]
    with target.write_model() as conn:
        before = conn.execute("SELECT stock FROM products WHERE id = %s", (product,)).fetchone()[0]
    calls: list[int] = []

    def command() -> RestockProduct:
        calls.append(1)
        return RestockProduct(product, 1)

    state = pedantic(benchmark, target, "restock_product", command, rounds(100), rounds(5, 0))
    assert state.stock == before + len(calls)


def test_discontinue_product(benchmark, target, inputs, rounds):
    if not inputs.spare:
        pytest.skip("no active product left that checkouts do not use")
    spare = iter(inputs.spare)
    taken: list[int] = []

    def command() -> DiscontinueProduct:
        taken.append(next(spare))
        return DiscontinueProduct(taken[-1])

    state = pedantic(
        benchmark, target, "discontinue_product", command, rounds(min(100, len(inputs.spare))), 0
    )
    assert (state.product_id, state.status) == (taken[-1], "discontinued")
    with target.write_model() as conn:
        statuses = conn.execute(
            "SELECT DISTINCT status FROM products WHERE id = ANY(%s)", (taken,)
        ).fetchall()
    assert statuses == [("discontinued",)]
