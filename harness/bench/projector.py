"""Projector benchmarks: the catch-up rate of a full rebuild, and time lag while checkout runs.

rebuild: a dataset clone's whole outbox (its seeded history) replayed into empty read models,
timed per batch size; afterwards the checkpoint must be at the outbox head and the read models
must agree with the write model, or the run fails.

lag: the projector runs in a process of its own, as in production, so the load generator's GIL
cannot slow it down. Its `on_applied` callback keeps, for every applied event, the source commit
time (track_commit_timestamp) and the moment its apply transaction committed; the process hands
them over when it stops. Time lag per event is the difference (DESIGN section 6): the batch-level
`last_lag_ms` of the checkpoint row would show one event per batch, not every event. Meanwhile
`clients` threads place orders in-process as fast as they can; the projector kept up if it
reaches the outbox head within DRAIN_BOUND seconds of the last checkout. The clone is vacuumed and
analyzed after the catch-up (autovacuum would otherwise start mid-run), and the run reports any
other session's transaction: the outbox is read below the server-wide xmin, so a long
transaction in any database of the write server holds the projector back.
"""

from __future__ import annotations

import dataclasses
import inspect
import json
import os
import random
import resource
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass, field

import psycopg
from hdrh.histogram import HdrHistogram

from harness.deploy.provision import drop, provision, ready_for_load
from harness.postgres import templates
from harness.postgres.servers import use_servers
from implementations import registry
from implementations.domain.commands import OrderLine, PlaceOrder
from implementations.interface import Config, Implementation
from implementations.projector.engine import LOCK_NAMESPACE, Applied, Projector
from implementations.projector.status import projection_status, wait_caught_up

DEFAULT_BATCH_SIZE: int = inspect.signature(Projector).parameters["batch_size"].default
DEFAULT_POLL_INTERVAL: float = inspect.signature(Projector).parameters["poll_interval"].default
IMPL = registry.projected()[0]  # rebuild and lag: the first architecture with a projection
LINES, QUANTITY = 3, 1  # as in bench checkout: comparable checkouts
KEY_PREFIX = "lag-"
DRAIN_BOUND = 1.0  # seconds after the last checkout within which a projector that kept up is done
CONFIG_ENV = "CQRS_BENCH_PROJECTOR_CONFIG"  # the projector process's settings (DSNs stay off argv)
LAG_RANGE_US = (1, 3_600_000_000)  # 1 us to 1 h, 3 significant digits
FOREIGN_WARNING = 0.1  # seconds: another session's transaction this long distorts the lag

Progress = Callable[[str], None]


class BenchError(RuntimeError):
    pass


# --- the checks both benchmarks end with ---------------------------------------------------------

# (what, on the write model, on the read models): each pair must be equal once caught up.
AGREEMENT = (
    ("orders", "SELECT count(*) FROM orders", "SELECT count(*) FROM rm_orders"),
    ("order lines", "SELECT count(*) FROM order_lines", "SELECT count(*) FROM rm_order_lines"),
    ("customers", "SELECT count(*) FROM customers", "SELECT count(*) FROM rm_customers"),
    ("products", "SELECT count(*) FROM products", "SELECT count(*) FROM rm_products"),
    (
        "non-cancelled orders",
        "SELECT count(*) FROM orders WHERE status <> 'cancelled'",
        "SELECT coalesce(sum(order_count), 0) FROM rm_customers",
    ),
    (
        "non-cancelled revenue",
        "SELECT coalesce(sum(total_cents), 0) FROM orders WHERE status <> 'cancelled'",
        "SELECT coalesce(sum(total_spent_cents), 0) FROM rm_customers",
    ),
)


@dataclass(frozen=True)
class Agreement:
    what: str
    write: int
    read: int


def _connect(dsn: str) -> psycopg.Connection:
    return psycopg.connect(dsn, autocommit=True, application_name="cqrs-bench:bench-projector")


def _select_all(dsn: str, queries: list[str]) -> tuple:
    with _connect(dsn) as conn:
        return conn.execute("SELECT " + ", ".join(f"({q})" for q in queries)).fetchone()


def check_projection(write_dsn: str, read_dsn: str) -> list[Agreement]:
    """The checkpoint is at the outbox head and the read models agree with the write model."""
    status = projection_status(write_dsn, read_dsn)
    problems = []
    if status.events_behind or (status.head is not None and status.checkpoint != status.head):
        problems.append(
            f"checkpoint {status.checkpoint} is not the outbox head {status.head} "
            f"({status.events_behind} events behind)"
        )
    written = _select_all(write_dsn, [w for _, w, _ in AGREEMENT])
    projected = _select_all(read_dsn, [r for _, _, r in AGREEMENT])
    found = [
        Agreement(what, int(w), int(r))
        for (what, _, _), w, r in zip(AGREEMENT, written, projected, strict=True)
    ]
    problems += [
        f"{a.what}: write model {a.write:,}, read models {a.read:,}"
        for a in found
        if a.write != a.read
    ]
    if problems:
        raise BenchError("the read models do not match the write model: " + "; ".join(problems))
    return found


def dataset_of(dsn: str) -> tuple[float, int]:
    """(sf, seed) of the dataset clone at `dsn`, from its dataset_info."""
    with _connect(dsn) as conn:
        info = dict(
            conn.execute(
                "SELECT key, value FROM dataset_info WHERE key IN ('sf', 'seed')"
            ).fetchall()
        )
    return float(info["sf"]), int(info["seed"])


def _with_clone(write_dsn: str | None, sf: float, seed: int, progress: Progress, work):
    """`work(clone dsn)` on a fresh clone of the (sf, seed) dataset, dropped afterwards."""
    with use_servers(write_dsn, None, announce=progress) as servers:
        template = templates.ensure_template(servers.write_dsn, sf, seed, progress=progress)
        name = f"bench_projector_{uuid.uuid4().hex[:12]}"
        try:
            started = time.perf_counter()
            dsn = templates.clone(servers.write_dsn, template.name, name)
            progress(f"cloned {template.name} into {name} in {time.perf_counter() - started:.1f}s")
            return work(dsn)
        finally:
            templates.drop_database(servers.write_dsn, name)


# --- rebuild: the catch-up rate ------------------------------------------------------------------


@dataclass(frozen=True)
class RebuildRun:
    batch_size: int
    events: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.events / self.seconds


@dataclass(frozen=True)
class RebuildResult:
    sf: float
    seed: int
    outbox_events: int
    runs: list[RebuildRun]
    agreement: list[Agreement]


def _throttled(progress: Progress, total: int, started: float, every: float = 2.0):
    last = [started]

    def report(done: int) -> None:
        now = time.perf_counter()
        if now - last[0] >= every:
            last[0] = now
            progress(
                f"  {done:>10,} / {total:,} events  {now - started:6.1f}s  "
                f"{done / (now - started):>9,.0f} events/s"
            )

    return report


def measure_rebuild(dsn: str, batch_sizes: list[int], progress: Progress = print) -> RebuildResult:
    """Rebuild the projection from the whole outbox once per batch size, on the clone at `dsn`."""
    impl = registry.create(IMPL, Config(dsn, dsn))
    impl.install()
    write_dsn, read_dsn = impl.projection.dsns
    with _connect(write_dsn) as conn:
        outbox = conn.execute("SELECT count(*) FROM outbox").fetchone()[0]
    runs, agreement = [], []
    for size in batch_sizes:
        progress(f"rebuilding {outbox:,} events, batch size {size:,}")
        with Projector(write_dsn, read_dsn, batch_size=size) as projector:
            started = time.perf_counter()
            applied = projector.rebuild(_throttled(progress, outbox, started))
            seconds = time.perf_counter() - started
        if applied != outbox:
            raise BenchError(f"the rebuild applied {applied:,} events; the outbox holds {outbox:,}")
        agreement = check_projection(write_dsn, read_dsn)
        runs.append(RebuildRun(size, applied, seconds))
        progress(
            f"  {applied:,} events in {seconds:.2f}s: {applied / seconds:,.0f} events/s; "
            "checkpoint at the outbox head, read models agree"
        )
    return RebuildResult(*dataset_of(write_dsn), outbox, runs, agreement)


def rebuild_report(result: RebuildResult) -> str:
    best = max(result.runs, key=lambda r: r.rate)
    return "\n".join(
        [
            f"projector rebuild: {IMPL}, sf={result.sf:g} seed={result.seed}, "
            f"{result.outbox_events:,} outbox events replayed into empty read models",
            "batch size      events   seconds    events/s",
            *(
                f"{r.batch_size:>10,} {r.events:>11,} {r.seconds:>9.2f} {r.rate:>11,.0f}"
                for r in result.runs
            ),
            "after each rebuild: checkpoint = outbox head, and write model = read models for",
            "  " + ", ".join(f"{a.what} {a.write:,}" for a in result.agreement),
            "",
            f"best {best.rate:,.0f} events/s at batch size {best.batch_size:,} "
            f"(goal: at least 20,000 events/s)",
        ]
    )


def run_rebuild(
    *,
    write_dsn: str | None = None,
    sf: float = 1.0,
    seed: int = 42,
    batch_sizes: list[int] | None = None,
    progress: Progress = print,
) -> RebuildResult:
    """measure_rebuild on a fresh clone of the (sf, seed) dataset, dropped afterwards."""
    sizes = batch_sizes or [DEFAULT_BATCH_SIZE]
    return _with_clone(
        write_dsn, sf, seed, progress, lambda dsn: measure_rebuild(dsn, sizes, progress)
    )


# --- lag: the projector in its own process -------------------------------------------------------


def projector_process() -> None:
    """The projector subprocess: run until SIGTERM or SIGINT, then print every applied batch."""
    config = json.loads(os.environ[CONFIG_ENV])
    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    threading.Thread(target=_stop_with_parent, args=(stop,), daemon=True).start()
    batches: list[tuple[float, list[float]]] = []

    def record(applied: Applied) -> None:
        batches.append((applied.applied_at, [c.timestamp() for c in applied.source_commits]))

    with Projector(
        config["write_dsn"],
        config["read_dsn"],
        batch_size=config["batch_size"],
        poll_interval=config["poll_interval"],
        on_applied=record,
    ) as projector:
        projector.run(stop)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    json.dump({"batches": batches, "cpu_seconds": usage.ru_utime + usage.ru_stime}, sys.stdout)


def _stop_with_parent(stop: threading.Event) -> None:
    """A benchmark that dies without stopping its projector still takes it along."""
    parent = os.getppid()
    while not stop.wait(1.0):
        if os.getppid() != parent:
            stop.set()


def _last_line(stderr: str) -> str:
    """The exception a child process died of: the last line of its traceback."""
    lines = stderr.strip().splitlines()
    return lines[-1] if lines else "(no message)"


# The projection's lock, held in this database (advisory locks are per database).
LOCK_HELD = """
    SELECT count(*) > 0 FROM pg_locks
    WHERE locktype = 'advisory' AND classid = %(ns)s AND objid = %(key)s AND granted
      AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
"""


@dataclass(frozen=True)
class ProjectorReport:
    batches: list[tuple[float, list[float]]]  # (applied at, source commit of each event), epoch s
    cpu_seconds: float


class ProjectorProcess:
    """A projector in a child process started here and stopped here, by its PID."""

    def __init__(self, write_dsn: str, read_dsn: str, *, batch_size: int, poll_interval: float):
        self.dsns = write_dsn, read_dsn
        self.config = {
            "write_dsn": write_dsn,
            "read_dsn": read_dsn,
            "batch_size": batch_size,
            "poll_interval": poll_interval,
        }
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> ProjectorProcess:
        code = "from harness.bench.projector import projector_process; projector_process()"
        env = {**os.environ, CONFIG_ENV: json.dumps(self.config)}
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code],
            env=env,
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        return self

    def wait_active(self, timeout: float = 30) -> None:
        """Until the child holds the projection's lock (it listens right after)."""
        deadline = time.monotonic() + timeout
        key = {"ns": LOCK_NAMESPACE, "key": Projector(*self.dsns).lock_key() % 2**32}
        with _connect(self.dsns[1]) as conn:
            while self.proc.poll() is None:
                if conn.execute(LOCK_HELD, key).fetchone()[0]:
                    return
                if time.monotonic() > deadline:
                    raise BenchError(f"the projector process was not active after {timeout:.0f}s")
                time.sleep(0.05)
        raise BenchError(f"the projector process exited: {_last_line(self.proc.communicate()[1])}")

    def alive(self) -> bool:
        return self.proc.poll() is None

    def stop(self) -> ProjectorReport:
        self.proc.send_signal(signal.SIGTERM)
        out, err = self.proc.communicate(timeout=60)
        if self.proc.returncode != 0:
            raise BenchError(
                f"the projector process failed (exit {self.proc.returncode}): {_last_line(err)}"
            )
        report = json.loads(out)
        return ProjectorReport([tuple(b) for b in report["batches"]], report["cpu_seconds"])

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.communicate(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.communicate()


# --- lag: the checkout load ----------------------------------------------------------------------


@dataclass(frozen=True)
class Shoppers:
    customers: list[int]
    products: list[int]  # active ones: an order for a discontinued product would fail


def prepare_load(dsn: str) -> Shoppers:
    """Stock so large that no order is refused (stock is in no read model: nothing to project);
    then, as autovacuum would have long done in production, every table vacuumed and analyzed
    after the catch-up, and a checkpoint, so the measurement inherits no dirty pages."""
    ready_for_load(dsn)
    with _connect(dsn) as conn:
        customers = [r[0] for r in conn.execute("SELECT id FROM customers ORDER BY id")]
        products = [
            r[0]
            for r in conn.execute("SELECT id FROM products WHERE status = 'active' ORDER BY id")
        ]
    if len(products) < LINES:
        raise BenchError(f"{len(products)} active products cannot fill {LINES} distinct lines")
    return Shoppers(customers, products)


@dataclass(frozen=True)
class Load:
    committed: int  # orders placed in the timed window
    warmup: int  # one untimed order per client before it
    seconds: float
    started_at: float  # epoch seconds: events committed from here on are measured
    errors: dict[str, int]


def drive_checkout(
    impl: Implementation,
    shoppers: Shoppers,
    clients: int,
    duration: float,
    ready: Callable[[], None],
    rate: float | None = None,
) -> Load:
    """`clients` threads place orders back to back for `duration` seconds, or, with `rate`,
    paced together to `rate` orders per second (each client starts its orders on a fixed
    schedule; one that falls behind places its next order at once).

    Each places one order first; `ready()` then runs (the projector catches up) before the clock
    starts, so connections are open and the projector is live when measuring begins.
    """
    tag = uuid.uuid4().hex[:8]
    committed, warm, errors, lock = [0] * clients, [0] * clients, Counter(), threading.Lock()
    warmed, go, stop = threading.Barrier(clients + 1), threading.Event(), threading.Event()
    clock: dict[str, float] = {}

    def client(i: int) -> None:
        rng, n = random.Random(f"{tag}-{i}"), 0

        def place() -> int:
            nonlocal n
            n += 1
            lines = tuple(OrderLine(p, QUANTITY) for p in rng.sample(shoppers.products, LINES))
            cmd = PlaceOrder(rng.choice(shoppers.customers), lines, f"{KEY_PREFIX}{tag}-{i}-{n}")
            try:
                return int(not impl.commands.place_order(cmd).replayed)
            except Exception as exc:  # counted by type and reported: there should be none
                with lock:
                    errors[type(exc).__name__] += 1
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


# --- lag: other sessions on the server -----------------------------------------------------------

# The oldest transaction holding an xid that is not this benchmark's. pg_snapshot_xmin is the
# server's: while such a transaction runs, in any database, no newer event can be read.
FOREIGN_TRANSACTION = """
    SELECT datname, application_name, extract(epoch FROM clock_timestamp() - xact_start)
    FROM pg_stat_activity
    WHERE backend_xid IS NOT NULL AND pid <> pg_backend_pid()
      AND (datname IS DISTINCT FROM current_database() OR application_name NOT LIKE 'cqrs-bench:%')
    ORDER BY xact_start LIMIT 1
"""


@dataclass
class ForeignHold:
    """The longest-running transaction of another session seen during the load (10 Hz samples)."""

    seconds: float = 0.0
    who: str = ""


@contextmanager
def watch_foreign_transactions(dsn: str) -> Iterator[ForeignHold]:
    seen, stop = ForeignHold(), threading.Event()

    def sample() -> None:
        with _connect(dsn) as conn:
            while not stop.wait(0.1):
                row = conn.execute(FOREIGN_TRANSACTION).fetchone()
                if row and row[2] > seen.seconds:
                    seen.seconds, seen.who = float(row[2]), f"{row[1] or '?'} in {row[0]}"

    sampler = threading.Thread(target=sample, name="foreign-transactions", daemon=True)
    sampler.start()
    try:
        yield seen
    finally:
        stop.set()
        sampler.join()


# --- lag: measuring ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LagResult:
    sf: float
    seed: int
    clients: int
    batch_size: int
    load: Load
    events: int  # events committed during the load, all applied
    batches: int  # apply transactions that carried them
    lag_ms: dict[str, float]  # p50, p90, p99, p99.9, max, mean
    p99_by_quarter_ms: list[float]  # by source commit time: growth means falling behind
    behind_at_end: int  # events committed but not applied when the last checkout returned
    drain_seconds: float | None  # from the last checkout until the checkpoint reached the head
    projector_cpu_seconds: float
    agreement: list[Agreement] = field(default_factory=list)
    foreign: ForeignHold = field(default_factory=ForeignHold)

    @property
    def tps(self) -> float:
        return self.load.committed / self.load.seconds

    @property
    def kept_up(self) -> bool:
        return self.drain_seconds is not None and self.drain_seconds <= DRAIN_BOUND


def _histogram() -> HdrHistogram:
    return HdrHistogram(*LAG_RANGE_US, 3)


def _percentiles(h: HdrHistogram) -> dict[str, float]:
    points = {"p50": 50, "p90": 90, "p99": 99, "p99.9": 99.9}
    if h.get_total_count() == 0:
        return {name: float("nan") for name in [*points, "max", "mean"]}
    found = {name: h.get_value_at_percentile(p) / 1000 for name, p in points.items()}
    return {**found, "max": h.get_max_value() / 1000, "mean": h.get_mean_value() / 1000}


def lag_histograms(report: ProjectorReport, load: Load) -> tuple[HdrHistogram, list[HdrHistogram]]:
    """Per-event time lag of the events committed during the load: overall and per quarter."""
    overall, quarters = _histogram(), [_histogram() for _ in range(4)]
    quarter = load.seconds / 4
    for applied_at, commits in report.batches:
        for committed in commits:
            if committed < load.started_at:
                continue
            lag_us = max(1, round((applied_at - committed) * 1e6))
            overall.record_value(lag_us)
            quarters[min(3, int((committed - load.started_at) / quarter))].record_value(lag_us)
    return overall, quarters


def _value(dsn: str, query: str, params: tuple = ()):
    with _connect(dsn) as conn:
        return conn.execute(query, params).fetchone()[0]


def measure_lag(
    dsn: str,
    *,
    clients: int = 8,
    duration: float = 20,
    batch_size: int = DEFAULT_BATCH_SIZE,
    poll_interval: float = DEFAULT_POLL_INTERVAL,
    progress: Progress = print,
    impl_name: str = IMPL,
    read_dsn: str | None = None,
    rate: float | None = None,
) -> LagResult:
    """Time lag of a projector process while `clients` threads place orders, on the clone at `dsn`
    (read models in `read_dsn` for an implementation with a read server of its own)."""
    impl = registry.create(impl_name, Config(dsn, read_dsn or dsn, pool_size=clients))
    impl.install()
    write_dsn, read_dsn = impl.projection.dsns
    if not _value(write_dsn, "SELECT current_setting('track_commit_timestamp')::bool"):
        raise BenchError("the write server runs without track_commit_timestamp: no commit times")
    with Projector(write_dsn, read_dsn, batch_size=batch_size) as projector:
        started = time.perf_counter()
        replayed = projector.catch_up()
    progress(f"caught up {replayed:,} events in {time.perf_counter() - started:.1f}s")
    shoppers = prepare_load(write_dsn)
    orders_before = _value(write_dsn, "SELECT count(*) FROM orders")
    position_before = _value(write_dsn, "SELECT coalesce(max(position), 0) FROM outbox")

    with ProjectorProcess(
        write_dsn, read_dsn, batch_size=batch_size, poll_interval=poll_interval
    ) as child:

        def ready() -> None:
            if wait_caught_up(write_dsn, read_dsn, timeout=30, alive=child.alive) is None:
                child.stop()  # raises if the projector process failed
                raise BenchError("the projector did not apply the warm-up orders within 30s")

        child.wait_active()
        progress(
            f"projector process {child.proc.pid} active; {clients} clients place orders "
            f"for {duration:g}s"
        )
        impl.start()
        try:
            with watch_foreign_transactions(write_dsn) as foreign:
                load = drive_checkout(impl, shoppers, clients, duration, ready, rate)
            ended = time.monotonic()
        finally:
            impl.stop()
        behind = projection_status(write_dsn, read_dsn).events_behind
        caught_up = wait_caught_up(write_dsn, read_dsn, timeout=60, alive=child.alive)
        drain = None if caught_up is None else time.monotonic() - ended
        report = child.stop()
    drained = "never caught up" if drain is None else f"caught up {drain:.3f}s later"
    progress(
        f"  {load.committed:,} orders in {load.seconds:.1f}s; when they stopped "
        f"{behind:,} events were behind, {drained}"
    )
    result = _lag_result(
        write_dsn,
        read_dsn,
        load,
        report,
        behind,
        drain,
        orders_before,
        position_before,
        clients,
        batch_size,
    )
    return dataclasses.replace(result, foreign=foreign)


def _lag_result(
    write_dsn: str,
    read_dsn: str,
    load: Load,
    report: ProjectorReport,
    behind: int,
    drain: float | None,
    orders_before: int,
    position_before: int,
    clients: int,
    batch_size: int,
) -> LagResult:
    """Check every count against the database, then summarize the lags."""
    gained = _value(write_dsn, "SELECT count(*) FROM orders") - orders_before
    appended = _value(
        write_dsn, "SELECT count(*) FROM outbox WHERE position > %s", (position_before,)
    )
    reported = sum(len(commits) for _, commits in report.batches)
    problems = []
    if gained != load.committed + load.warmup:
        problems.append(
            f"the database gained {gained:,} orders, the clients counted "
            f"{load.committed + load.warmup:,}"
        )
    if drain is not None and reported != appended:
        problems.append(f"the projector reported {reported:,} events, {appended:,} were appended")
    if problems:
        raise BenchError("the lag measurement is not trustworthy: " + "; ".join(problems))
    agreement = check_projection(write_dsn, read_dsn) if drain is not None else []
    overall, quarters = lag_histograms(report, load)
    sf, seed = dataset_of(write_dsn)
    return LagResult(
        sf=sf,
        seed=seed,
        clients=clients,
        batch_size=batch_size,
        load=load,
        events=overall.get_total_count(),
        batches=sum(1 for _, commits in report.batches if commits[-1] >= load.started_at),
        lag_ms=_percentiles(overall),
        p99_by_quarter_ms=[_percentiles(q)["p99"] for q in quarters],
        behind_at_end=behind,
        drain_seconds=drain,
        projector_cpu_seconds=report.cpu_seconds,
        agreement=agreement,
    )


def lag_report(r: LagResult) -> str:
    lag = r.lag_ms
    errors = ", ".join(f"{k} {v}" for k, v in sorted(r.load.errors.items())) or "none"
    drained = "never" if r.drain_seconds is None else f"{r.drain_seconds:.3f}s later"
    return "\n".join(
        [
            f"projector time lag: {IMPL}, sf={r.sf:g} seed={r.seed}, projector in its own process "
            f"(batch size {r.batch_size:,}), {r.clients} checkout clients in-process",
            f"checkout        {r.load.committed:>9,} orders in {r.load.seconds:.1f}s = "
            f"{r.tps:,.1f} tps (errors: {errors})",
            f"events applied  {r.events:>9,} in {r.batches:,} batches "
            f"({r.events / max(r.batches, 1):.1f} per batch)",
            "time lag (apply commit - source commit, every event committed during the load), ms:",
            "     p50      p90      p99    p99.9      max     mean",
            " ".join(f"{lag[k]:>8.1f}" for k in ("p50", "p90", "p99", "p99.9", "max", "mean")),
            "p99 by quarter of the run (by commit time): "
            + ", ".join(f"{v:.1f}" for v in r.p99_by_quarter_ms)
            + " ms",
            f"when checkout stopped: {r.behind_at_end:,} events behind, caught up {drained}",
            f"projector CPU {r.projector_cpu_seconds:.1f}s over its life "
            f"(checkout ran {r.load.seconds:.1f}s)",
            describe_foreign(r.foreign),
            "read models agree with the write model: "
            + ", ".join(f"{a.what} {a.write:,}" for a in r.agreement),
            "",
            f"kept up: {'yes' if r.kept_up else 'NO'} (caught up within {DRAIN_BOUND:g}s of the last "
            f"checkout); p99 {lag['p99']:.1f} ms (goal: under 100 ms)",
        ]
    )


def describe_foreign(hold: ForeignHold) -> str:
    if hold.seconds < FOREIGN_WARNING:
        return "no other session held the outbox back (none ran a transaction with an xid for 0.1s or more)"
    return (
        f"WARNING: another session ({hold.who}) ran a transaction for {hold.seconds:.1f}s "
        "during the load; the server-wide xmin held the projector back: use quiet servers"
    )


def run_lag(
    *,
    write_dsn: str | None = None,
    sf: float = 0.1,
    seed: int = 42,
    clients: int = 8,
    duration: float = 20,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress = print,
) -> LagResult:
    """measure_lag on a fresh clone of the (sf, seed) dataset, dropped afterwards."""
    return _with_clone(
        write_dsn,
        sf,
        seed,
        progress,
        lambda dsn: measure_lag(
            dsn,
            clients=clients,
            duration=duration,
            batch_size=batch_size,
            progress=progress,
        ),
    )


# --- lag of several implementations at the same checkout rate -----------------------------------


def run_lag_compare(
    *,
    impls: list[str],
    rate: float,
    write_dsn: str | None = None,
    read_dsn: str | None = None,
    sf: float = 0.1,
    seed: int = 42,
    clients: int = 8,
    duration: float = 20,
    batch_size: int = DEFAULT_BATCH_SIZE,
    progress: Progress = print,
) -> list[tuple[str, LagResult]]:
    """measure_lag for each implementation in turn, each on run databases of its own (read
    models on the read server for an architecture that keeps them there), all at the same paced
    checkout rate."""
    results = []
    with use_servers(write_dsn, read_dsn, announce=progress) as servers:
        for name in impls:
            progress(f"--- {name}")
            dbs = provision(name, servers, sf=sf, seed=seed, progress=progress)
            try:
                results.append(
                    (
                        name,
                        measure_lag(
                            dbs.write_dsn,
                            read_dsn=dbs.read_dsn,
                            impl_name=name,
                            clients=clients,
                            duration=duration,
                            batch_size=batch_size,
                            progress=progress,
                            rate=rate,
                        ),
                    )
                )
            finally:
                drop(servers, dbs)
    return results


def lag_compare_report(results: list[tuple[str, LagResult]], rate: float) -> str:
    head = f"{'implementation':16} {'checkouts/s':>11} {'events':>8} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'max ms':>8}  kept up"
    lines = [f"projection time lag at the same paced checkout rate (target {rate:g}/s)", head]
    for name, r in results:
        lag = r.lag_ms
        lines.append(
            f"{name:16} {r.tps:11.1f} {r.events:8,} {lag['p50']:8.1f} {lag['p90']:8.1f} "
            f"{lag['p99']:8.1f} {lag['max']:8.1f}  {'yes' if r.kept_up else 'NO'}"
        )
    if any(r.foreign.seconds > 0 for _, r in results):
        lines.append("WARNING: another session's transaction held a projector back during a run")
    return "\n".join(lines)
