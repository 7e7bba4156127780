"""The one behaviour scenario every implementation must pass (like eventsourcing's
`assert_implementation`): start from a known catalog, run every command and query, and compare
with answers worked out by hand. Reads pass the last command's consistency token, so CQRS
variants are checked once their projection has caught up with what the scenario wrote; an
implementation with a refresher has its materialized views refreshed, explicitly, before the reads.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import timedelta

from sqlalchemy import Connection

from implementations.domain import commands as c
from implementations.domain import errors
from implementations.domain import queries as q
from implementations.domain import results as r
from implementations.domain.events import CustomerRegistered, ProductAdded
from implementations.interface import Implementation
from implementations.write_model import catalog

CUSTOMERS = [
    CustomerRegistered(1, "Ada Lovelace", "ada@example.com"),
    CustomerRegistered(2, "Alan Turing", "alan@example.com"),
]
PRODUCTS = [
    ProductAdded(1, "KET-001", "Copper Kettle", "kitchen", 2500, 10),
    ProductAdded(2, "MUG-002", "Blue Mug 100%", "kitchen", 800, 50),
    ProductAdded(3, "LMP-003", "Desk Lamp", "office", 4000, 5),
    ProductAdded(4, "PEN-004", "Fountain Pen", "office", 1500, 2),
]


class ContractViolation(AssertionError):
    pass


def seed(conn: Connection) -> None:
    """Write the scenario's catalog (and its events) into a fresh write model."""
    catalog.register(conn, CUSTOMERS, PRODUCTS)


def check(actual: object, expected: object, what: str) -> None:
    if actual != expected:
        raise ContractViolation(f"{what}:\n  expected {expected!r}\n  got      {actual!r}")


def expect_error(kind: type[errors.DomainError], what: str, call: Callable[[], object]) -> None:
    try:
        call()
    except kind:
        return
    except errors.DomainError as exc:
        raise ContractViolation(f"{what}: expected {kind.__name__}, got {exc!r}") from exc
    raise ContractViolation(f"{what}: expected {kind.__name__}, nothing was raised")


def run_scenario(impl: Implementation) -> None:
    """Run the scenario on a started implementation whose database holds only `seed`'s catalog."""
    cmd, qry = impl.commands, impl.queries
    line = c.OrderLine

    first = cmd.place_order(c.PlaceOrder(1, (line(1, 2), line(2, 1)), "contract-a"))
    check((first.total_cents, first.item_count, first.replayed), (5800, 3, False), "order A")
    again = cmd.place_order(c.PlaceOrder(1, (line(1, 2), line(2, 1)), "contract-a"))
    check(
        (again.order_id, again.total_cents, again.replayed),
        (first.order_id, 5800, True),
        "replaying order A's idempotency key",
    )

    price = cmd.change_product_price(c.ChangeProductPrice(1, 3000, "copper went up"))
    check((price.price_cents, price.stock, price.status), (3000, 8, "active"), "price change")
    second = cmd.place_order(c.PlaceOrder(1, (line(1, 1),), "contract-b"))
    check(second.total_cents, 3000, "order B uses the new price")
    third = cmd.place_order(c.PlaceOrder(2, (line(3, 2), line(2, 5)), "contract-c"))
    check(third.total_cents, 12000, "order C")

    _check_refusals(impl)
    cmd.ship_order(c.ShipOrder(first.order_id))
    cancelled = cmd.cancel_order(c.CancelOrder(second.order_id))
    check(cancelled.status, "cancelled", "cancel B")
    expect_error(
        errors.InvalidTransition,
        "cancel B twice",
        lambda: cmd.cancel_order(c.CancelOrder(second.order_id)),
    )
    expect_error(
        errors.InvalidTransition,
        "ship cancelled B",
        lambda: cmd.ship_order(c.ShipOrder(second.order_id)),
    )
    expect_error(
        errors.InvalidTransition,
        "cancel shipped A",
        lambda: cmd.cancel_order(c.CancelOrder(first.order_id)),
    )
    restocked = cmd.restock_product(c.RestockProduct(1, 5))
    check(restocked.stock, 8 + 1 + 5 - 1, "stock of product 1 after B's cancel and a restock")
    gone = cmd.discontinue_product(c.DiscontinueProduct(4))
    check(gone.status, "discontinued", "discontinue product 4")
    token = gone.token
    if impl.refresher is not None:  # views promise the live answers once refreshed: refresh now
        impl.refresher.refresh()

    summary = qry.order_summary(first.order_id, after=token)
    check(
        summary,
        r.OrderSummary(
            first.order_id,
            1,
            "Ada Lovelace",
            "shipped",
            5800,
            3,
            first.placed_at,
            (
                r.SummaryLine(1, 1, "KET-001", "Copper Kettle", 2, 2500),
                r.SummaryLine(2, 2, "MUG-002", "Blue Mug 100%", 1, 800),
            ),
        ),
        "order A summary",
    )
    expect_error(
        errors.NotFound,
        "summary of an unknown order",
        lambda: qry.order_summary(10**9, after=token),
    )

    mine = qry.customer_orders(q.RecentOrdersQuery(1, limit=10), after=token)
    check(
        (mine.order_count, mine.total_spent_cents, mine.average_order_cents, mine.last_order_at),
        (1, 5800, 5800, first.placed_at),
        "customer 1 stats exclude cancelled B",
    )
    check(
        [o.order_id for o in mine.recent],
        [second.order_id, first.order_id],
        "customer 1 recent orders, newest first",
    )
    check(
        [(o.status, o.total_cents, o.item_count) for o in mine.recent],
        [("cancelled", 3000, 1), ("shipped", 5800, 3)],
        "customer 1 recent order details",
    )
    expect_error(
        errors.NotFound,
        "orders of an unknown customer",
        lambda: qry.customer_orders(q.RecentOrdersQuery(999), after=token),
    )

    _check_dashboards(impl, first, third, token)
    _check_search(impl, token)


def _check_refusals(impl: Implementation) -> None:
    cmd, line = impl.commands, c.OrderLine
    expect_error(
        errors.OutOfStock,
        "order beyond stock",
        lambda: cmd.place_order(c.PlaceOrder(2, (line(2, 1), line(4, 3)), "contract-x")),
    )
    expect_error(
        errors.NotFound,
        "order for an unknown customer",
        lambda: cmd.place_order(c.PlaceOrder(99, (line(1, 1),), "contract-y")),
    )
    expect_error(
        errors.NotFound,
        "order with an unknown product",
        lambda: cmd.place_order(c.PlaceOrder(1, (line(1, 1), line(77, 1)), "contract-z")),
    )
    expect_error(
        errors.NotFound, "ship an unknown order", lambda: cmd.ship_order(c.ShipOrder(10**9))
    )
    expect_error(
        errors.NotFound,
        "restock an unknown product",
        lambda: cmd.restock_product(c.RestockProduct(77, 1)),
    )
    # The refused orders took nothing: product 2's stock is unchanged by order X.
    state = cmd.restock_product(c.RestockProduct(2, 1))
    check(state.stock, 50 - 1 - 5 + 1, "product 2 stock after refused orders and a restock of 1")
    cmd.discontinue_product(c.DiscontinueProduct(3))
    expect_error(
        errors.ProductDiscontinued,
        "order a discontinued product",
        lambda: cmd.place_order(c.PlaceOrder(1, (line(3, 1),), "contract-w")),
    )
    expect_error(
        errors.ProductDiscontinued,
        "restock a discontinued product",
        lambda: cmd.restock_product(c.RestockProduct(3, 1)),
    )
    expect_error(
        errors.ProductDiscontinued,
        "reprice a discontinued product",
        lambda: cmd.change_product_price(c.ChangeProductPrice(3, 1, "sale")),
    )


def _check_dashboards(impl, first: r.PlacedOrder, third: r.PlacedOrder, token) -> None:
    qry = impl.queries
    window = q.TimeWindow(
        first.placed_at - timedelta(minutes=5), third.placed_at + timedelta(seconds=1)
    )
    # Live orders: A (shipped, 2x kettle at 2500 + mug 800) and C (placed, 2 lamps + 5 mugs).
    check(
        qry.sales_by_category(window, after=token),
        [
            r.CategorySales("kitchen", 2, 2 + 1 + 5, 5000 + 800 + 4000),
            r.CategorySales("office", 1, 2, 8000),
        ],
        "sales by category",
    )
    check(
        qry.top_products(q.TopProductsQuery(window, limit=2), after=token),
        [
            r.ProductRevenue(3, "LMP-003", "Desk Lamp", "office", 2, 8000),
            r.ProductRevenue(1, "KET-001", "Copper Kettle", "kitchen", 2, 5000),
        ],
        "top products",
    )
    points = qry.revenue_over_time(q.RevenueQuery(window, "minute"), after=token)
    check(
        (sum(p.orders for p in points), sum(p.revenue_cents for p in points)),
        (2, 17800),
        "revenue per minute over the window",
    )
    hours = qry.revenue_over_time(q.RevenueQuery(window, "hour"), after=token)
    check(sum(p.revenue_cents for p in hours), 17800, "revenue per hour over the window")
    later = q.TimeWindow(
        third.placed_at + timedelta(minutes=2), third.placed_at + timedelta(hours=1)
    )
    check(qry.sales_by_category(later, after=token), [], "sales in a window with no orders")


def _check_search(impl, token) -> None:
    qry = impl.queries
    everything = qry.search_products(q.ProductSearch(), after=token)
    check(
        [(h.product_id, h.units_sold) for h in everything],
        [(2, 6), (1, 2)],
        "search: active products by units sold (3 and 4 are discontinued)",
    )
    check(everything[0], r.ProductHit(2, "MUG-002", "Blue Mug 100%", "kitchen", 800, 6), "hit")
    check(
        [h.product_id for h in qry.search_products(q.ProductSearch(text="100%"), after=token)],
        [2],
        "search text is a literal substring",
    )
    check(
        [h.product_id for h in qry.search_products(q.ProductSearch(text="ket-"), after=token)],
        [1],
        "search text matches sku, case-insensitively",
    )
    found = qry.search_products(
        q.ProductSearch(category="kitchen", min_price_cents=1000, max_price_cents=3000), after=token
    )
    check([h.product_id for h in found], [1], "search by category and price range")
    none = q.ProductSearch(category="garden")
    check(qry.search_products(none, after=token), [], "search in an empty category")
