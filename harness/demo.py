"""The quick-start job: a short burst of real commands and queries through the HTTP API.

It picks real customers and products from the dataset, runs checkouts from several threads, reads
back what it wrote, asks the dashboards and search, exercises the other commands and a few bad
requests, and returns what every call answered and how long it took (client side).
"""

from __future__ import annotations

import random
import statistics
import threading
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import httpx
import psycopg


@dataclass
class Tally:
    """Status codes and latencies (ms) per operation; thread-safe."""

    statuses: dict[str, Counter] = field(default_factory=lambda: defaultdict(Counter))
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    lock: threading.Lock = field(default_factory=threading.Lock)

    def call(
        self, client: httpx.Client, op: str, method: str, url: str, **kwargs
    ) -> httpx.Response:
        response = client.request(method, url, **kwargs)
        with self.lock:
            self.statuses[op][response.status_code] += 1
            self.latencies[op].append(response.elapsed.total_seconds() * 1000)
        return response

    def rows(self) -> list[tuple[str, int, str, float, float]]:
        out = []
        for op in self.statuses:
            lat = sorted(self.latencies[op])
            p95 = statistics.quantiles(lat, n=20)[-1] if len(lat) > 1 else lat[0]
            codes = " ".join(f"{code}x{n}" for code, n in sorted(self.statuses[op].items()))
            out.append((op, len(lat), codes, statistics.median(lat), p95))
        return out


def _sample_ids(dsn: str, seed: int) -> tuple[list[int], list[int]]:
    with psycopg.connect(dsn) as conn:
        customers = [r[0] for r in conn.execute("SELECT id FROM customers ORDER BY id")]
        products = [r[0] for r in conn.execute(
            "SELECT id FROM products WHERE status = 'active' AND stock >= 20 ORDER BY id")]  # fmt: skip
    rng = random.Random(seed)
    return rng.sample(customers, min(50, len(customers))), products


def run(base_url: str, dsn: str, *, checkouts: int = 200, threads: int = 4, seed: int = 1) -> Tally:
    customers, products = _sample_ids(dsn, seed)
    tally = Tally()
    with httpx.Client(base_url=base_url, timeout=30) as client:
        placed = _checkouts(client, tally, customers, products, checkouts, threads, seed)
        _reads(client, tally, placed, customers)
        _other_commands(client, tally, placed, products)
        _bad_requests(client, tally, products)
    return tally


def _checkouts(client, tally, customers, products, count, threads, seed) -> list[dict]:
    def one(i: int) -> dict | None:
        rng = random.Random(seed * 1_000_003 + i)
        lines = [{"product_id": p, "quantity": rng.randint(1, 3)}
                 for p in rng.sample(products, rng.randint(1, 4))]  # fmt: skip
        body = {"customer_id": rng.choice(customers), "lines": lines}
        key = {"Idempotency-Key": f"demo-{uuid.uuid4()}"}
        response = tally.call(client, "checkout", "POST", "/orders", json=body, headers=key)
        if response.status_code == 201 and i % 10 == 0:  # a client retrying after a timeout
            tally.call(client, "checkout (retry)", "POST", "/orders", json=body, headers=key)
        return response.json() if response.status_code == 201 else None

    with ThreadPoolExecutor(threads) as pool:
        return [p for p in pool.map(one, range(count)) if p]


def _reads(client, tally, placed, customers) -> None:
    for order in placed[:50]:  # read-your-writes: wait (bounded) until the order is visible
        params = {"after": order["token"]} if order.get("token") else {}
        tally.call(client, "order summary", "GET", f"/orders/{order['order_id']}", params=params)
    for customer in customers[:20]:
        tally.call(client, "customer orders", "GET", f"/customers/{customer}/orders")
    now = datetime.now(UTC)
    for span in (timedelta(hours=1), timedelta(days=1), timedelta(days=7)):
        window = {"since": (now - span).isoformat(), "until": now.isoformat()}
        tally.call(
            client, "sales by category", "GET", "/dashboard/sales-by-category", params=window
        )
        tally.call(client, "top products", "GET", "/dashboard/top-products", params=window)
        bucket = "minute" if span <= timedelta(days=1) else "hour"
        tally.call(client, "revenue over time", "GET", "/dashboard/revenue",
                   params={**window, "bucket": bucket})  # fmt: skip
    for params in ({"text": "steel"}, {"min_price_cents": 1000, "max_price_cents": 5000}, {}):
        tally.call(client, "product search", "GET", "/products/search", params=params)


def _other_commands(client, tally, placed, products) -> None:
    for order in placed[:10]:
        tally.call(client, "ship order", "POST", f"/orders/{order['order_id']}/ship")
    for order in placed[10:15]:
        tally.call(client, "cancel order", "POST", f"/orders/{order['order_id']}/cancel")
    product = products[-1]
    tally.call(client, "change price", "POST", f"/products/{product}/price",
               json={"new_price_cents": 1999, "reason": "demo"})  # fmt: skip
    tally.call(
        client, "restock product", "POST", f"/products/{product}/restock", json={"quantity": 5}
    )
    tally.call(client, "discontinue product", "POST", f"/products/{product}/discontinue")


def _bad_requests(client, tally, products) -> None:
    """Mistakes a client makes; each must get a 4xx with a reason and change nothing."""
    bad = [
        {"customer_id": 1, "lines": [{"product_id": products[0], "quantity": 0}]},
        {"customer_id": 1, "lines": [{"product_id": 10**12, "quantity": 1}]},
        {"customer_id": 1, "lines": [{"product_id": products[-1], "quantity": 1}]},
        {"customer_id": "one", "lines": []},
    ]
    for body in bad:
        tally.call(client, "bad checkout", "POST", "/orders", json=body)


def report(tallies: dict[str, Tally]) -> str:
    """One table: for each operation, each implementation's calls, p50 and p95, and statuses."""
    names = list(tallies)
    head = f"{'operation':20}" + "".join(f" | {n:^33}" for n in names)
    sub = f"{'':20}" + "".join(f" | {'p50 ms':>7} {'p95 ms':>7}  {'statuses':<16}" for _ in names)
    lines = ["", head, sub, "-" * len(sub)]
    rows = {name: {op: rest for op, *rest in tally.rows()} for name, tally in tallies.items()}
    for op in dict.fromkeys(op for r in rows.values() for op in r):
        cells = []
        for name in names:
            calls, codes, p50, p95 = rows[name].get(op, (0, "-", float("nan"), float("nan")))
            cells.append(f" | {p50:7.1f} {p95:7.1f}  {codes:<16}")
        lines.append(f"{op:20}" + "".join(cells))
    lines.append(
        "(client-side latency through the HTTP API on this machine; a smoke run, not a benchmark)"
    )
    return "\n".join(lines)
