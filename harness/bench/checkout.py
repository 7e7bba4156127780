"""Checkout throughput: an implementation called in-process next to pgbench running the same SQL.

pgbench is the ceiling: the three checkout statements with no client-side work at all. The
pgbench script is generated from the statement texts in `implementations.write_model.checkout`,
so the two sides cannot drift apart. Both sides place orders of LINES lines, quantity 1 each,
products drawn uniformly from LINES disjoint id bands (so lines are distinct), customers uniform.
Rounds alternate (python, pgbench, python, ...) on one database; before each measurement every
product is made active with a huge stock, and afterwards the orders the database gained must equal
what the side counted, each with LINES lines and a correct total, or the run fails.
"""

from __future__ import annotations

import os
import random
import re
import shutil
import statistics
import subprocess
import tempfile
import textwrap
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import psycopg
from psycopg import sql

from harness.deploy.provision import HUGE_STOCK
from harness.postgres import templates
from harness.postgres.binaries import find_bindir
from harness.postgres.servers import use_servers
from implementations import registry
from implementations.domain.commands import OrderLine, PlaceOrder
from implementations.interface import Config, Implementation
from implementations.write_model import checkout

LINES = 3
QUANTITY = 1
PGBENCH_KEY_PREFIX = "pgb-"
PYTHON_KEY_PREFIX = "py-"

# psycopg's named placeholders, as the checkout statements use them.
_BIND = re.compile(r"%\((\w+)\)s")
_TPS = re.compile(r"^tps = ([\d.]+) \(without initial connection time\)", re.M)
_PROCESSED = re.compile(r"^number of transactions actually processed: (\d+)", re.M)
_FAILED = re.compile(r"^number of failed transactions: (\d+)", re.M)


class BenchError(RuntimeError):
    pass


@dataclass(frozen=True)
class IdRange:
    low: int
    high: int


@dataclass(frozen=True)
class Catalog:
    """The id ranges orders are drawn from: customers, and one product band per line."""

    customers: IdRange
    product_bands: tuple[IdRange, ...]


@dataclass(frozen=True)
class Measurement:
    side: str  # "python" | "pgbench"
    round: int
    committed: int  # transactions the side counted as committed in the timed window
    seconds: float
    tps: float  # as the side reports it
    db_orders: int  # orders the database gained during the measurement (warm-up included)
    warmup: int = 0  # untimed orders placed before the clock started (python: one per client)
    errors: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class BenchResult:
    impl: str
    clients: int
    duration: int
    measurements: list[Measurement]

    def median(self, side: str) -> float:
        return statistics.median(m.tps for m in self.measurements if m.side == side)

    @property
    def ratio(self) -> float:
        return self.median("python") / self.median("pgbench")


# --- the pgbench script -------------------------------------------------------------------------


def _pgbench_sql(statement: str, replacements: dict[str, str]) -> str:
    """The statement with each bind parameter replaced; one it does not know is an error."""
    params = set(_BIND.findall(statement))
    if unknown := params - set(replacements):
        raise BenchError(f"checkout statement has parameters the pgbench script lacks: {unknown}")
    return textwrap.dedent(_BIND.sub(lambda m: replacements[m.group(1)], statement)).strip()


def pgbench_script(catalog: Catalog) -> str:
    """A pgbench script placing one order per transaction with the statements of checkout.py."""
    if not re.search(r"RETURNING\s+id\b", checkout.INSERT_ORDER):
        raise BenchError("INSERT_ORDER no longer returns `id` first: fix the \\gset below")
    n = len(catalog.product_bands)
    same = {"customer_id": ":customer_id", "order_id": ":order_id"}
    # pgbench has no array variables, hence ARRAY[:p1, ...]. This form lets the server settle on
    # a generic plan after five executions; the application's single array parameter would be
    # re-planned every time, which is why its command connections force generic plans.
    arrays = {
        "product_ids": "ARRAY[" + ", ".join(f":p{i}" for i in range(1, n + 1)) + "]",
        "quantities": "ARRAY[" + ", ".join([str(QUANTITY)] * n) + "]",
        "idempotency_key": f"'{PGBENCH_KEY_PREFIX}' || :client_id || '-' || :key",
    }
    replacements = {**same, **arrays}
    c = catalog.customers
    sets = [f"\\set customer_id random({c.low}, {c.high})"]
    sets += [
        f"\\set p{i} random({b.low}, {b.high})" for i, b in enumerate(catalog.product_bands, 1)
    ]
    sets.append("\\set key random(1, 9223372036854775806)")
    return "\n".join(
        [
            "-- generated by harness/bench/checkout.py from implementations/write_model/checkout.py",
            *sets,
            "BEGIN;",
            # \gset ends the INSERT in place of `;` and stores RETURNING id as :order_id.
            _pgbench_sql(checkout.INSERT_ORDER, replacements) + " \\gset order_",
            _pgbench_sql(checkout.TAKE_STOCK, replacements) + ";",
            _pgbench_sql(checkout.INSERT_LINES, replacements) + ";",
            "COMMIT;",
            "",
        ]
    )


# --- the database: the catalog, preparing a measurement, checking what it left ------------------


@dataclass(frozen=True)
class Snapshot:
    orders: int
    last_order_id: int
    stock: int


def _id_range(conn: psycopg.Connection, table: str) -> IdRange:
    query = sql.SQL("SELECT min(id), max(id), count(*) FROM {}").format(sql.Identifier(table))
    low, high, count = conn.execute(query).fetchone()
    if not count or high - low + 1 != count:
        raise BenchError(f"{table} ids are not contiguous ({count} rows from {low} to {high})")
    return IdRange(low, high)


def load_catalog(dsn: str) -> Catalog:
    """Customers, and the products split into LINES disjoint bands of contiguous ids."""
    with psycopg.connect(dsn) as conn:
        customers = _id_range(conn, "customers")
        products = _id_range(conn, "products")
    size = products.high - products.low + 1
    if size < LINES:
        raise BenchError(f"{size} products cannot fill {LINES} distinct lines")
    cuts = [products.low + size * i // LINES for i in range(LINES + 1)]
    return Catalog(customers, tuple(IdRange(cuts[i], cuts[i + 1] - 1) for i in range(LINES)))


def _snapshot(conn: psycopg.Connection) -> Snapshot:
    orders, last = conn.execute("SELECT count(*), coalesce(max(id), 0) FROM orders").fetchone()
    (stock,) = conn.execute("SELECT sum(stock) FROM products").fetchone()
    return Snapshot(orders, last, int(stock))


def prepare(dsn: str) -> Snapshot:
    """Every product active with a huge stock, statistics fresh, a checkpoint taken: no order is
    refused and no measurement inherits the previous one's dirty pages."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(
            "UPDATE products SET status = 'active', stock = %s", (HUGE_STOCK,), prepare=False
        )
        conn.execute("VACUUM ANALYZE products, orders, order_lines")
        conn.execute("CHECKPOINT")
        return _snapshot(conn)


ORDER_CHECK = """
    SELECT count(*),
           count(*) FILTER (WHERE n_lines <> %(lines)s OR units <> %(units)s OR total <> line_sum),
           count(*) FILTER (WHERE NOT starts_with(idempotency_key, %(prefix)s))
    FROM (
        SELECT o.id, o.total_cents AS total, o.idempotency_key, count(l.order_id) AS n_lines,
               coalesce(sum(l.quantity), 0) AS units,
               coalesce(sum(l.quantity * l.unit_price_cents), 0) AS line_sum
        FROM orders o LEFT JOIN order_lines l ON l.order_id = o.id
        WHERE o.id > %(since)s
        GROUP BY o.id
    ) placed
"""


def verify(dsn: str, before: Snapshot, expected: int, side: str, prefix: str) -> int:
    """The orders the database gained: as many as the side counted, each whole and correct."""
    with psycopg.connect(dsn) as conn:
        after = _snapshot(conn)
        params = {
            "lines": LINES,
            "units": LINES * QUANTITY,
            "prefix": prefix,
            "since": before.last_order_id,
        }
        new, malformed, foreign = conn.execute(ORDER_CHECK, params).fetchone()
    gained = after.orders - before.orders
    problems = []
    if gained != expected:
        problems.append(f"the database gained {gained} orders, {side} counted {expected}")
    if new != gained:
        problems.append(f"{new} orders have new ids but the count grew by {gained}")
    if malformed:
        problems.append(f"{malformed} orders lack {LINES} lines or a correct total")
    if foreign:
        problems.append(f"{foreign} new orders were not placed by {side}")
    if before.stock - after.stock != gained * LINES * QUANTITY:
        problems.append(f"stock fell by {before.stock - after.stock} for {gained} orders")
    if problems:
        raise BenchError(f"{side} measurement is not trustworthy: " + "; ".join(problems))
    return gained


# --- the two sides ------------------------------------------------------------------------------


def _order(rng: random.Random, catalog: Catalog, key: str) -> PlaceOrder:
    c = catalog.customers
    lines = tuple(
        OrderLine(rng.randint(band.low, band.high), QUANTITY) for band in catalog.product_bands
    )
    return PlaceOrder(rng.randint(c.low, c.high), lines, key)


def measure_python(
    impl: Implementation, catalog: Catalog, clients: int, duration: int, tag: str
) -> tuple[int, int, float, Counter]:
    """(committed, warm-up orders, seconds, errors by type) of `clients` threads placing orders.

    Each thread places one untimed order first, so pool connections are open before the clock
    starts (pgbench likewise reports tps without its initial connection time).
    """
    committed, warm, errors, lock = [0] * clients, [0] * clients, Counter(), threading.Lock()
    clock: dict[str, float] = {}

    def start_clock() -> None:
        clock["start"] = time.monotonic()
        clock["deadline"] = clock["start"] + duration

    barrier = threading.Barrier(clients + 1, action=start_clock)
    stop = threading.Event()

    def client(i: int) -> None:
        rng = random.Random(f"{tag}-{i}")
        n = 0

        def place() -> int:
            nonlocal n
            n += 1
            try:
                placed = impl.commands.place_order(
                    _order(rng, catalog, f"{PYTHON_KEY_PREFIX}{tag}-{i}-{n}")
                )
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
            barrier.wait()
        except threading.BrokenBarrierError:
            return
        while not stop.is_set() and time.monotonic() < clock["deadline"]:
            committed[i] += place()

    # Futures, not Thread.join: on Python 3.11 a join interrupted by Ctrl-C marks a running
    # thread as finished, and its connection would outlive the pool.
    with ThreadPoolExecutor(clients, thread_name_prefix="checkout-client") as pool:
        futures = [pool.submit(client, i) for i in range(clients)]
        try:
            barrier.wait()
            wait(futures)
        finally:
            stop.set()
            barrier.abort()
            wait(futures)
    for future in futures:
        future.result()
    seconds = time.monotonic() - clock["start"]
    return sum(committed), sum(warm), seconds, errors


def pgbench_binary() -> Path:
    candidates = []
    try:
        candidates.append(find_bindir() / "pgbench")
    except RuntimeError:
        pass
    if found := shutil.which("pgbench"):
        candidates.append(Path(found))
    for candidate in candidates:
        if candidate.is_file():
            return candidate
    raise BenchError("pgbench not found: install the PostgreSQL client programs")


def measure_pgbench(dsn: str, script: Path, clients: int, duration: int) -> tuple[int, float, int]:
    """(transactions processed, tps without initial connection time, failed transactions)."""
    cmd = [
        str(pgbench_binary()),
        "-n",
        "-M",
        "prepared",
        "-c",
        str(clients),
        "-j",
        str(min(2, clients)),
        "-T",
        str(duration),
        "-f",
        str(script),
        dsn,
    ]
    env = {**os.environ, "PGAPPNAME": "cqrs-bench:pgbench"}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        out, err = proc.communicate()
    finally:
        if proc.poll() is None:
            proc.terminate()
            proc.wait()
    tps, processed = _TPS.search(out), _PROCESSED.search(out)
    if proc.returncode != 0 or not tps or not processed:
        raise BenchError(f"pgbench failed (exit {proc.returncode}):\n{err.strip()}\n{out.strip()}")
    failed = _FAILED.search(out)
    return int(processed.group(1)), float(tps.group(1)), int(failed.group(1)) if failed else 0


# --- rounds -------------------------------------------------------------------------------------


def _python_round(
    dsn: str, impl: str, catalog: Catalog, clients: int, duration: int, r: int, tag: str
) -> Measurement:
    before = prepare(dsn)
    system = registry.create(impl, Config(dsn, dsn, pool_size=clients))
    system.start()
    try:
        committed, warm, seconds, errors = measure_python(
            system, catalog, clients, duration, f"{tag}-r{r}"
        )
    finally:
        system.stop()
    db = verify(dsn, before, committed + warm, "python", PYTHON_KEY_PREFIX)
    return Measurement("python", r, committed, seconds, committed / seconds, db, warm, dict(errors))


def _pgbench_round(dsn: str, script: Path, clients: int, duration: int, r: int) -> Measurement:
    before = prepare(dsn)
    processed, tps, failed = measure_pgbench(dsn, script, clients, duration)
    db = verify(dsn, before, processed, "pgbench", PGBENCH_KEY_PREFIX)
    errors = {"failed": failed} if failed else {}
    return Measurement("pgbench", r, processed, processed / tps, tps, db, errors=errors)


def measure(
    dsn: str,
    *,
    impl: str | None = None,
    clients: int = 8,
    duration: int = 15,
    rounds: int = 2,
    progress: Callable[[str], None] = print,
) -> BenchResult:
    """Alternate python and pgbench measurements on the database at `dsn` (a dataset clone) of
    `impl` (default: the baseline architecture)."""
    impl = impl or registry.baseline()
    catalog = load_catalog(dsn)
    registry.create(impl, Config(dsn, dsn)).install()  # first: both sides see its indexes
    tag = uuid.uuid4().hex[:8]
    measurements: list[Measurement] = []
    with tempfile.TemporaryDirectory(prefix="cqrs-bench-pgbench-") as tmp:
        script = Path(tmp) / "checkout.sql"
        script.write_text(pgbench_script(catalog))
        for r in range(1, rounds + 1):
            progress(f"round {r}/{rounds}: {impl} in-process, {clients} clients, {duration} s")
            measurements.append(_python_round(dsn, impl, catalog, clients, duration, r, tag))
            progress("  " + _row(measurements[-1]))
            progress(f"round {r}/{rounds}: pgbench, {clients} clients, {duration} s")
            measurements.append(_pgbench_round(dsn, script, clients, duration, r))
            progress("  " + _row(measurements[-1]))
    return BenchResult(impl, clients, duration, measurements)


def _row(m: Measurement) -> str:
    errors = ", ".join(f"{k} {v}" for k, v in sorted(m.errors.items())) or "none"
    return (
        f"{m.round:>5}  {m.side:<8} {m.committed:>10} {m.seconds:>8.2f} {m.tps:>10.1f} "
        f"{m.db_orders:>10}  {errors}"
    )


def report(result: BenchResult) -> str:
    """The rounds, the median of each side and their ratio, as a plain-text table."""
    python, pgbench = result.median("python"), result.median("pgbench")
    return "\n".join(
        [
            f"checkout throughput: {result.impl} in-process vs pgbench (same SQL), "
            f"{result.clients} clients, {result.duration} s per measurement",
            "round  side      committed  seconds        tps  db orders  errors",
            *(_row(m) for m in result.measurements),
            "db orders: what the database gained, checked against each count (python's include one",
            "untimed warm-up order per client); pgbench seconds exclude its connection time.",
            "",
            f"{'median python (in-process ' + result.impl + ')':<36} {python:>10.1f} tps",
            f"{'median pgbench (same SQL)':<36} {pgbench:>10.1f} tps",
            f"ratio python / pgbench {result.ratio:.2f} (goal: at least 0.5)",
        ]
    )


def run(
    *,
    write_dsn: str | None = None,
    impl: str | None = None,
    clients: int = 8,
    duration: int = 15,
    rounds: int = 2,
    sf: float = 0.1,
    seed: int = 42,
    progress: Callable[[str], None] = print,
) -> BenchResult:
    """Measure on a fresh clone of the (sf, seed) dataset, dropped afterwards, also on Ctrl-C."""
    with use_servers(write_dsn, None, announce=progress) as servers:
        template = templates.ensure_template(servers.write_dsn, sf, seed, progress=progress)
        name = f"bench_checkout_{uuid.uuid4().hex[:12]}"
        try:
            dsn = templates.clone(servers.write_dsn, template.name, name)
            return measure(
                dsn, impl=impl, clients=clients, duration=duration, rounds=rounds, progress=progress
            )
        finally:
            templates.drop_database(servers.write_dsn, name)
