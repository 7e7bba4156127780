"""`cqrs-bench bench dashboards`: what an architecture's dashboards cost at each scale, one query
at a time on an idle clone.

For each scale factor, a run clone is provisioned (as a run makes it: history ending now), and
every dashboard query of the `dashboard-heavy` mix's analysts (sales by category, top products,
revenue) is run over each of its windows once untimed, then `repeat` times in turn; each figure
is the median. No
load runs beside them, so the figure is the query's own cost, not its queueing: a run's
dashboard latencies add the contention of the analysts and shoppers running at once.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from harness.deploy.provision import attached, drop, provision
from harness.postgres.servers import Servers
from implementations.domain import queries as q
from implementations.interface import Implementation
from workloads.spec import load_mix
from workloads.users import MINUTE_BUCKETS_UP_TO_S

Progress = Callable[[str], None]
MIX = "dashboard-heavy"
QUERIES = ("sales_by_category", "top_products", "revenue")


@dataclass(frozen=True)
class Timing:
    sf: float
    query: str
    window_s: int
    p50_ms: float
    rows: int


def windows() -> list[int]:
    """The dashboard windows the mix's analysts draw from, in seconds."""
    return sorted(load_mix(MIX).classes["Analyst"].windows_s)


def _call(impl: Implementation, query: str, window_s: int) -> Callable[[], object]:
    until = datetime.now(UTC)
    window = q.TimeWindow(until - timedelta(seconds=window_s), until)
    if query == "sales_by_category":
        return lambda: impl.queries.sales_by_category(window)
    if query == "top_products":
        return lambda: impl.queries.top_products(q.TopProductsQuery(window, 10))
    bucket = "minute" if window_s <= MINUTE_BUCKETS_UP_TO_S else "hour"
    return lambda: impl.queries.revenue_over_time(q.RevenueQuery(window, bucket))


def run(
    servers: Servers,
    impl_name: str,
    sfs: list[float],
    seed: int,
    repeat: int,
    progress: Progress = print,
) -> list[Timing]:
    timings = []
    for sf in sfs:
        dbs = provision(impl_name, servers, sf=sf, seed=seed, progress=progress)
        try:
            with attached(impl_name, dbs, pool_size=1) as impl:
                for query in QUERIES:
                    for window_s in windows():
                        call = _call(impl, query, window_s)
                        seconds, answer = [], call()  # untimed: caches warm as in a run
                        for _ in range(repeat):
                            started = time.perf_counter()
                            answer = call()
                            seconds.append(time.perf_counter() - started)
                        rows = len(answer) if isinstance(answer, list) else 1
                        p50 = statistics.median(seconds) * 1_000
                        timings.append(Timing(sf, query, window_s, p50, rows))
                        progress(f"sf {sf:g} {query} over {_span(window_s)}: p50 {p50:,.1f} ms")
        finally:
            drop(servers, dbs)
    return timings


def _span(seconds: int) -> str:
    for unit, size in (("d", 86_400), ("h", 3_600), ("min", 60)):
        if seconds >= size and seconds % size == 0:
            return f"{seconds // size} {unit}"
    return f"{seconds} s"


def report(timings: list[Timing]) -> str:
    """A table: one row per query and window, one column per scale, then each scale's cost as
    a multiple of the smallest's."""
    sfs = sorted({t.sf for t in timings})
    by = {(t.query, t.window_s, t.sf): t for t in timings}
    head = f"{'query':<18} {'window':>7} " + " ".join(f"{f'sf {sf:g} ms':>12}" for sf in sfs)
    head += "  " + " ".join(f"{f'x sf {sf:g}':>9}" for sf in sfs[1:])
    lines = [head]
    for query in QUERIES:
        for window_s in sorted({t.window_s for t in timings}):
            cells = [by.get((query, window_s, sf)) for sf in sfs]
            text = f"{query:<18} {_span(window_s):>7} "
            text += " ".join(f"{c.p50_ms:>12,.1f}" if c else f"{'-':>12}" for c in cells)
            base = cells[0]
            text += "  " + " ".join(
                f"{c.p50_ms / base.p50_ms:>9.1f}" if c and base else f"{'-':>9}" for c in cells[1:]
            )
            lines.append(text)
    return "\n".join(lines)
