"""The in-process checkout driver every benchmark places orders with.

One order shape: LINES_PER_ORDER lines of QUANTITY_PER_LINE unit each, the customer drawn
uniformly, each line's product drawn uniformly from a band of its own (the products split into
LINES_PER_ORDER bands), so the lines of an order are distinct. `drive_checkout` has threads place
such orders through an implementation, as fast as they can or paced to a rate.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass

from harness.bench.clone import connect
from harness.bench.errors import BenchError
from implementations.domain.commands import OrderLine, PlaceOrder
from implementations.interface import Implementation

LINES_PER_ORDER = 3
QUANTITY_PER_LINE = 1

ORDER_IDS = """
    SELECT (SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM customers),
           (SELECT coalesce(array_agg(id ORDER BY id), '{}') FROM products WHERE status = 'active')
"""


@dataclass(frozen=True)
class OrderCatalog:
    """What orders are drawn from: customers, and one band of products per order line."""

    customers: Sequence[int]
    product_bands: tuple[Sequence[int], ...]

    @classmethod
    def of(cls, customers: Sequence[int], products: Sequence[int]) -> OrderCatalog:
        """`products` split into LINES_PER_ORDER bands of consecutive entries."""
        if not customers:
            raise BenchError("no customers to place orders for")
        if len(products) < LINES_PER_ORDER:
            raise BenchError(
                f"{len(products)} active products cannot fill {LINES_PER_ORDER} distinct lines"
            )
        cuts = [len(products) * i // LINES_PER_ORDER for i in range(LINES_PER_ORDER + 1)]
        return cls(
            customers, tuple(products[cuts[i] : cuts[i + 1]] for i in range(LINES_PER_ORDER))
        )

    def order(self, rng: random.Random, key: str) -> PlaceOrder:
        lines = tuple(OrderLine(rng.choice(band), QUANTITY_PER_LINE) for band in self.product_bands)
        return PlaceOrder(rng.choice(self.customers), lines, key)


def order_ids(dsn: str) -> tuple[list[int], list[int]]:
    """Every customer's id and every active product's id, ascending."""
    with connect(dsn) as conn:
        customers, products = conn.execute(ORDER_IDS).fetchone()
    return customers, products


class OrderStream:
    """One client's orders from `catalog`: drawn by a generator seeded with `seed` (default: the
    prefix), with idempotency keys `prefix` + 1, 2, ..."""

    def __init__(self, catalog: OrderCatalog, prefix: str, seed: object = None) -> None:
        self.catalog, self.prefix = catalog, prefix
        self.rng = random.Random(prefix if seed is None else seed)
        self.issued = 0

    def next(self) -> PlaceOrder:
        self.issued += 1
        return self.catalog.order(self.rng, f"{self.prefix}{self.issued}")


@dataclass(frozen=True)
class Load:
    committed: int  # orders placed in the timed window
    warmup: int  # one untimed order per client before it
    seconds: float
    started_at: float  # epoch seconds when the timed window began
    errors: dict[str, int]  # failed or replayed orders by type: there should be none

    @property
    def tps(self) -> float:
        return self.committed / self.seconds


def drive_checkout(
    impl: Implementation,
    catalog: OrderCatalog,
    *,
    clients: int,
    duration: float,
    key_prefix: str,
    rate: float | None = None,
    ready: Callable[[], None] = lambda: None,
) -> Load:
    """`clients` threads place orders through `impl` back to back for `duration` seconds, or,
    with `rate`, paced together to `rate` orders per second (each client starts its orders on a
    fixed schedule; one that falls behind places its next order at once). Client i's keys start
    with `key_prefix` + "i-".

    Each places one untimed order first, so pool connections are open before the clock starts
    (pgbench likewise reports tps without its initial connection time); `ready()` runs then,
    before the clock starts (e.g. a projector catches up with those orders).
    """
    committed, warm, errors, lock = [0] * clients, [0] * clients, Counter(), threading.Lock()
    warmed, go, stop = threading.Barrier(clients + 1), threading.Event(), threading.Event()
    clock: dict[str, float] = {}

    def client(i: int) -> None:
        orders = OrderStream(catalog, f"{key_prefix}{i}-")

        def place() -> int:
            try:
                placed = impl.commands.place_order(orders.next())
            except Exception as exc:  # counted by type and reported: there should be none
                failure = type(exc).__name__
            else:
                if not placed.replayed:
                    return 1
                failure = "Replayed"
            with lock:
                errors[failure] += 1
            return 0

        warm[i] = place()
        try:
            warmed.wait()
        except threading.BrokenBarrierError:
            return
        go.wait()
        interval, k = (clients / rate if rate else 0.0), 0
        while not stop.is_set() and time.monotonic() < clock["deadline"]:
            if interval:
                due = clock["start"] + (k + i / clients) * interval
                k += 1
                if (pause := due - time.monotonic()) > 0 and stop.wait(pause):
                    break
            committed[i] += place()

    # Futures, not Thread.join: on Python 3.11 a join interrupted by Ctrl-C marks a running
    # thread as finished, and its connection would outlive the pool.
    with ThreadPoolExecutor(clients, thread_name_prefix="checkout-client") as pool:
        futures = [pool.submit(client, i) for i in range(clients)]
        try:
            warmed.wait()
            ready()
            clock.update(started_at=time.time(), start=time.monotonic())
            clock["deadline"] = clock["start"] + duration
            go.set()
            wait(futures)
        finally:
            stop.set()
            warmed.abort()
            go.set()
            wait(futures)
    for future in futures:
        future.result()
    seconds = time.monotonic() - clock["start"]
    return Load(sum(committed), sum(warm), seconds, clock["started_at"], dict(errors))
