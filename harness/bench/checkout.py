"""`bench checkout`: checkout throughput of an implementation called in-process (the checkout
driver) next to pgbench running the same SQL.

pgbench is the ceiling: the three checkout statements with no client-side work at all. The
pgbench script is generated from the statement texts in `implementations.write_model.checkout`,
so the two sides cannot drift apart. Both sides place the driver's orders: LINES_PER_ORDER lines
of QUANTITY_PER_LINE each, one product from each of LINES_PER_ORDER disjoint id bands (so lines
are distinct), customers uniform; every product is made active first, so the bands are ranges of
ids pgbench can draw from. Rounds alternate (python, pgbench, python, ...) on one database; before
each measurement the database is made ready for load (`deploy.provision.ready_for_load`), and
afterwards the orders the database gained must equal what the side counted, each with
LINES_PER_ORDER lines and a correct total, or the run fails.
"""

from __future__ import annotations

import os
import re
import shutil
import statistics
import subprocess
import tempfile
import textwrap
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from harness.bench.clone import connect, fresh_clone
from harness.bench.driver import (
    LINES_PER_ORDER,
    QUANTITY_PER_LINE,
    OrderCatalog,
    drive_checkout,
    order_ids,
)
from harness.bench.errors import BenchError
from harness.deploy.provision import ready_for_load
from harness.postgres.binaries import find_bindir
from implementations import registry
from implementations.interface import Config
from implementations.write_model import checkout

PGBENCH_KEY_PREFIX = "pgb-"
PYTHON_KEY_PREFIX = "py-"

# psycopg's named placeholders, as the checkout statements use them.
_BIND = re.compile(r"%\((\w+)\)s")
_TPS = re.compile(r"^tps = ([\d.]+) \(without initial connection time\)", re.M)
_PROCESSED = re.compile(r"^number of transactions actually processed: (\d+)", re.M)
_FAILED = re.compile(r"^number of failed transactions: (\d+)", re.M)


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


def _id_range(ids: Sequence[int], what: str) -> tuple[int, int]:
    """(first, last) of ascending ids that leave no gap: pgbench draws from such a range."""
    if not ids or ids[-1] - ids[0] + 1 != len(ids):
        first, last = (ids[0], ids[-1]) if ids else (None, None)
        raise BenchError(f"{what} ids are not contiguous ({len(ids)} from {first} to {last})")
    return ids[0], ids[-1]


def pgbench_script(catalog: OrderCatalog) -> str:
    """A pgbench script placing one order per transaction with the statements of checkout.py,
    drawn as the driver draws them from `catalog` (whose ids must be contiguous ranges)."""
    if not re.search(r"RETURNING\s+id\b", checkout.INSERT_ORDER):
        raise BenchError("INSERT_ORDER no longer returns `id` first: fix the \\gset below")
    n = len(catalog.product_bands)
    same = {"customer_id": ":customer_id", "order_id": ":order_id"}
    # pgbench has no array variables, hence ARRAY[:p1, ...]. This form lets the server settle on
    # a generic plan after five executions; the application's single array parameter would be
    # re-planned every time, which is why its command connections force generic plans.
    arrays = {
        "product_ids": "ARRAY[" + ", ".join(f":p{i}" for i in range(1, n + 1)) + "]",
        "quantities": "ARRAY[" + ", ".join([str(QUANTITY_PER_LINE)] * n) + "]",
        "idempotency_key": f"'{PGBENCH_KEY_PREFIX}' || :client_id || '-' || :key",
    }
    replacements = {**same, **arrays}
    ranges = [_id_range(catalog.customers, "customer")]
    ranges += [_id_range(band, "product") for band in catalog.product_bands]
    names = ["customer_id", *(f"p{i}" for i in range(1, n + 1))]
    sets = [
        f"\\set {name} random({low}, {high})"
        for name, (low, high) in zip(names, ranges, strict=True)
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


# --- the database: the catalog, what it holds before a measurement, what it gained -------------


def activate_catalog(dsn: str) -> OrderCatalog:
    """Every product made active (pgbench draws product ids from ranges: a discontinued one would
    fail its order), then the catalog orders are drawn from."""
    with connect(dsn) as conn:
        conn.execute("UPDATE products SET status = 'active' WHERE status <> 'active'")
    return OrderCatalog.of(*order_ids(dsn))


@dataclass(frozen=True)
class Counts:
    orders: int
    last_order_id: int
    stock: int


COUNTS = """
    SELECT (SELECT count(*) FROM orders), (SELECT coalesce(max(id), 0) FROM orders),
           (SELECT sum(stock) FROM products)
"""


def snapshot_counts(dsn: str) -> Counts:
    """Orders, the last order id and the total stock: what a measurement is checked against."""
    with connect(dsn) as conn:
        orders, last, stock = conn.execute(COUNTS).fetchone()
    return Counts(orders, last, int(stock))


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


def check_orders(dsn: str, before: Counts, expected: int, side: str, prefix: str) -> int:
    """The orders the database gained: as many as the side counted, each whole and correct."""
    after = snapshot_counts(dsn)
    params = {
        "lines": LINES_PER_ORDER,
        "units": LINES_PER_ORDER * QUANTITY_PER_LINE,
        "prefix": prefix,
        "since": before.last_order_id,
    }
    with connect(dsn) as conn:
        new, malformed, foreign = conn.execute(ORDER_CHECK, params).fetchone()
    gained = after.orders - before.orders
    problems = []
    if gained != expected:
        problems.append(f"the database gained {gained} orders, {side} counted {expected}")
    if new != gained:
        problems.append(f"{new} orders have new ids but the count grew by {gained}")
    if malformed:
        problems.append(f"{malformed} orders lack {LINES_PER_ORDER} lines or a correct total")
    if foreign:
        problems.append(f"{foreign} new orders were not placed by {side}")
    if before.stock - after.stock != gained * LINES_PER_ORDER * QUANTITY_PER_LINE:
        problems.append(f"stock fell by {before.stock - after.stock} for {gained} orders")
    if problems:
        raise BenchError(f"{side} measurement is not trustworthy: " + "; ".join(problems))
    return gained


# --- pgbench ------------------------------------------------------------------------------------


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
    dsn: str, impl: str, catalog: OrderCatalog, clients: int, duration: int, r: int, tag: str
) -> Measurement:
    ready_for_load(dsn)
    before = snapshot_counts(dsn)
    system = registry.create(impl, Config(dsn, dsn, pool_size=clients))
    system.start()
    try:
        load = drive_checkout(
            system,
            catalog,
            clients=clients,
            duration=duration,
            key_prefix=f"{PYTHON_KEY_PREFIX}{tag}-r{r}-",
        )
    finally:
        system.stop()
    expected = load.committed + load.warmup
    db = check_orders(dsn, before, expected, "python", PYTHON_KEY_PREFIX)
    return Measurement(
        "python", r, load.committed, load.seconds, load.tps, db, load.warmup, load.errors
    )


def _pgbench_round(dsn: str, script: Path, clients: int, duration: int, r: int) -> Measurement:
    ready_for_load(dsn)
    before = snapshot_counts(dsn)
    processed, tps, failed = measure_pgbench(dsn, script, clients, duration)
    db = check_orders(dsn, before, processed, "pgbench", PGBENCH_KEY_PREFIX)
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
    catalog = activate_catalog(dsn)
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
    with fresh_clone(write_dsn, sf, seed, "bench_checkout", progress) as dsn:
        return measure(
            dsn, impl=impl, clients=clients, duration=duration, rounds=rounds, progress=progress
        )
