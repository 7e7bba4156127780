"""What each user does, without Locust: choosing requests (pure) and performing them on a client.

`Planner.next()` is a pure function of the user's seeded rng and the catalog: the same seed gives
every architecture the same requests in the same order. `Actor.perform()` sends one request
through a shop client (either transport) and keeps the little state a user has (its last order).

Every draw uses `random.Random.random()`, the one method whose sequence Python promises to keep
across versions (as workloads/dataset.py does).
"""

from __future__ import annotations

import time
from bisect import bisect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from functools import cache
from itertools import accumulate
from random import Random
from typing import Any, Protocol

from workloads.catalog import Catalog
from workloads.spec import DASHBOARD_OPERATIONS, UserClassSpec

PRODUCT_ZIPF_S = 1.1
LINE_COUNT_WEIGHTS = (50, 30, 15, 5)  # 1..4 lines
QUANTITY_WEIGHTS = (70, 20, 10)  # 1..3 units
MAX_PRICE_CHOICES = (1_000, 2_000, 5_000, 10_000, 20_000)
PRICE_RANGE = (199, 49_999)
RESTOCK_RANGE = (20, 200)
PRICE_REASONS = ("promotion", "supplier cost change", "competitor match", "seasonal")
MINUTE_BUCKETS_UP_TO_S = 3 * 3_600  # revenue in minute buckets up to 3 h windows, else hours
VISIBILITY_POLL_S = 0.005
VISIBILITY_TIMEOUT_S = 10.0


class OperationError(Exception):
    """A failed operation, already reported; `error_type` is the name errors are counted under.

    The same in both transports: the domain error code (out_of_stock, not_found, ...),
    "unavailable" for a 503 / database outage, else the exception's class name.
    """

    def __init__(self, error_type: str, reason: str = "") -> None:
        super().__init__(f"{error_type}: {reason}" if reason else error_type)
        self.error_type = error_type


def error_type(exc: BaseException) -> str:
    return getattr(exc, "error_type", None) or type(exc).__name__


# --- choosing ------------------------------------------------------------------------------------


def _index(rng: Random, n: int) -> int:
    return min(int(rng.random() * n), n - 1)


def _pick(rng: Random, items: Sequence[Any]) -> Any:
    return items[_index(rng, len(items))]


def _weighted(rng: Random, cum_weights: Sequence[float]) -> int:
    return min(bisect(cum_weights, rng.random() * cum_weights[-1]), len(cum_weights) - 1)


def _between(rng: Random, low: int, high: int) -> int:
    return low + _index(rng, high - low + 1)


class Popularity:
    """Zipf-skewed product choice (s = 1.1) over a seeded ranking of the products: hot rows."""

    def __init__(self, products: Sequence[int], seed: int, s: float = PRODUCT_ZIPF_S) -> None:
        ranking = list(products)
        order = Random(f"{seed}-popularity")
        for i in range(len(ranking) - 1, 0, -1):  # Fisher-Yates on random() only
            j = _index(order, i + 1)
            ranking[i], ranking[j] = ranking[j], ranking[i]
        self.ranking = ranking
        self.cum = list(accumulate(1.0 / (rank**s) for rank in range(1, len(ranking) + 1)))

    def pick(self, rng: Random) -> int:
        return self.ranking[_weighted(rng, self.cum)]


@cache
def _cum(weights: tuple[float, ...]) -> list[float]:
    return list(accumulate(weights))


@dataclass(frozen=True)
class Request:
    operation: str
    args: dict[str, Any] = field(default_factory=dict)


class Planner:
    """The requests of one user: `Random(f"{seed}-{class}-{index}")` and the catalog decide them."""

    def __init__(
        self, spec: UserClassSpec, catalog: Catalog, popularity: Popularity, seed: int, index: int
    ) -> None:
        self.spec, self.catalog, self.popularity = spec, catalog, popularity
        self.prefix = f"{seed}-{spec.name}-{index}"
        self.rng = Random(self.prefix)
        self.n = 0
        self.operations = [op for op, _ in spec.tasks]
        self.cum = _cum(tuple(w for _, w in spec.tasks))
        if "discontinue" in self.operations and not catalog.retired:
            raise ValueError(
                f"{spec.name} discontinues products but the catalog has no retired products"
            )

    def next(self) -> Request:
        operation = self.operations[_weighted(self.rng, self.cum)]
        self.n += 1
        if operation in DASHBOARD_OPERATIONS:
            return Request(operation, self._window())
        return Request(operation, getattr(self, f"_{operation}")())

    def _checkout(self) -> dict[str, Any]:
        rng, lines = self.rng, {}
        wanted = 1 + _weighted(rng, _cum(LINE_COUNT_WEIGHTS))
        for _ in range(wanted * 8):  # distinct products; give up on a tiny catalog
            if len(lines) == wanted:
                break
            product = self.popularity.pick(rng)
            quantity = 1 + _weighted(rng, _cum(QUANTITY_WEIGHTS))
            lines.setdefault(product, quantity)
        return {
            "customer_id": _pick(rng, self.catalog.customers),
            "lines": tuple(lines.items()),
            "key": f"{self.prefix}-{self.n}",
        }

    def _view_order(self) -> dict[str, Any]:
        first, newest = self.catalog.first_order_id, self.catalog.newest_order_id
        fallback = _between(self.rng, first, newest) if newest else None
        return {"fallback_order_id": fallback}  # used until this user has placed an order

    def _customer_orders(self) -> dict[str, Any]:
        return {"customer_id": _pick(self.rng, self.catalog.customers), "limit": 10}

    def _search(self) -> dict[str, Any]:
        category = _pick(self.rng, self.catalog.categories) if self.catalog.categories else None
        max_price = _pick(self.rng, MAX_PRICE_CHOICES) if self.rng.random() < 0.5 else None
        return {"category": category, "max_price_cents": max_price, "limit": 20}

    def _window(self) -> dict[str, Any]:
        return {"window_s": _pick(self.rng, self.spec.windows_s)}

    def _change_price(self) -> dict[str, Any]:
        return {
            "product_id": _pick(self.rng, self.catalog.products),
            "price_cents": _between(self.rng, *PRICE_RANGE),
            "reason": _pick(self.rng, PRICE_REASONS),
        }

    def _restock(self) -> dict[str, Any]:
        return {
            "product_id": _pick(self.rng, self.catalog.products),
            "quantity": _between(self.rng, *RESTOCK_RANGE),
        }

    def _discontinue(self) -> dict[str, Any]:
        return {"product_id": _pick(self.rng, self.catalog.retired)}

    def _ryw_visibility(self) -> dict[str, Any]:
        return self._checkout()

    def _health(self) -> dict[str, Any]:
        return {}


# --- performing ----------------------------------------------------------------------------------


class ShopClient(Protocol):
    """One method per operation (see workloads/transports.py). Each reports its request to Locust
    under `name` and raises OperationError when it failed; `order_visible` reports nothing."""

    def place_order(
        self, name: str, customer_id: int, lines: tuple[tuple[int, int], ...], key: str
    ) -> int: ...
    def order_summary(self, name: str, order_id: int) -> None: ...
    def order_visible(self, order_id: int) -> bool: ...
    def customer_orders(self, name: str, customer_id: int, limit: int) -> None: ...
    def search(
        self, name: str, category: str | None, max_price_cents: int | None, limit: int
    ) -> None: ...
    def sales_by_category(self, name: str, since: datetime, until: datetime) -> None: ...
    def top_products(self, name: str, since: datetime, until: datetime, limit: int) -> None: ...
    def revenue(self, name: str, since: datetime, until: datetime, bucket: str) -> None: ...
    def change_price(self, name: str, product_id: int, price_cents: int, reason: str) -> None: ...
    def restock(self, name: str, product_id: int, quantity: int) -> None: ...
    def discontinue(self, name: str, product_id: int) -> None: ...
    def health(self, name: str) -> None: ...


class Sink(Protocol):
    """Where results go besides Locust's request event (workloads/recorder.py)."""

    def record(
        self, operation: str, kind: str, micros: float, error: str | None = None
    ) -> None: ...

    def log_query(self, operation: str, started_at: float, ok: bool) -> None: ...


class Actor:
    """Performs requests for one user (or one open-loop class) and remembers its last order."""

    def __init__(
        self, client: ShopClient, sink: Sink, sleep: Callable[[float], None] = time.sleep
    ) -> None:
        self.client, self.sink, self.sleep = client, sink, sleep
        self.last_order_id: int | None = None

    def perform(self, request: Request) -> str | None:
        """Send `request`; the error type when it failed (already reported), else None."""
        try:
            getattr(self, f"_{request.operation}")(request.operation, **request.args)
        except OperationError as exc:
            return exc.error_type
        return None

    def _checkout(self, name: str, customer_id: int, lines: tuple, key: str) -> None:
        self.last_order_id = self.client.place_order(name, customer_id, lines, key)

    def _view_order(self, name: str, fallback_order_id: int | None) -> None:
        order_id = self.last_order_id or fallback_order_id
        if order_id is not None:
            self.client.order_summary(name, order_id)

    def _customer_orders(self, name: str, customer_id: int, limit: int) -> None:
        self.client.customer_orders(name, customer_id, limit)

    def _search(
        self, name: str, category: str | None, max_price_cents: int | None, limit: int
    ) -> None:
        self.client.search(name, category, max_price_cents, limit)

    def _dashboard(self, name: str, window_s: int, query: Callable[..., None], *extra) -> None:
        started_at = time.time()
        until = datetime.fromtimestamp(started_at, UTC)
        ok = False
        try:
            query(name, until - timedelta(seconds=window_s), until, *extra)
            ok = True
        finally:
            self.sink.log_query(name, started_at, ok)

    def _dashboard_sales_by_category(self, name: str, window_s: int) -> None:
        self._dashboard(name, window_s, self.client.sales_by_category)

    def _dashboard_top_products(self, name: str, window_s: int) -> None:
        self._dashboard(name, window_s, self.client.top_products, 10)

    def _dashboard_revenue(self, name: str, window_s: int) -> None:
        bucket = "minute" if window_s <= MINUTE_BUCKETS_UP_TO_S else "hour"
        self._dashboard(name, window_s, self.client.revenue, bucket)

    def _health(self, name: str) -> None:
        self.client.health(name)

    def _change_price(self, name: str, product_id: int, price_cents: int, reason: str) -> None:
        self.client.change_price(name, product_id, price_cents, reason)

    def _restock(self, name: str, product_id: int, quantity: int) -> None:
        self.client.restock(name, product_id, quantity)

    def _discontinue(self, name: str, product_id: int) -> None:
        self.client.discontinue(name, product_id)

    def _ryw_visibility(self, name: str, customer_id: int, lines: tuple, key: str) -> None:
        """Place an order (reported as probe_checkout, apart from the shoppers' checkouts), then
        poll the read side without a token.

        Visibility is the time from the command's response to the start of the first poll that
        found the order; polls every 5 ms, gives up after 10 s (error "timeout").
        """
        order_id = self.client.place_order("probe_checkout", customer_id, lines, key)
        answered = time.perf_counter()
        while True:
            polled = time.perf_counter()
            try:
                visible = self.client.order_visible(order_id)
            except OperationError as exc:
                self.sink.record(name, "visibility", 0, exc.error_type)
                raise
            if visible:
                self.sink.record(name, "visibility", (polled - answered) * 1e6)
                return
            if polled - answered >= VISIBILITY_TIMEOUT_S:
                self.sink.record(name, "visibility", 0, "timeout")
                raise OperationError("timeout", f"order {order_id} not visible after 10 s")
            self.sleep(VISIBILITY_POLL_S)
