"""`bench lag` and `bench lag-compare`: projection time lag while checkout runs.

The projector runs as in production, as a process of its own (`cqrs-bench project run`), so the
load generator's GIL cannot slow it down; it records every applied batch (`--record-lag`: the
moment its apply transaction committed and the source commit time of each of its events,
track_commit_timestamp), and the lag per source commit is read from that file as the runner
reads it (DESIGN section 6): the batch-level `last_lag_ms` of the checkpoint row would show one
event per batch, not every commit. Meanwhile `clients` threads place orders in-process (the
checkout driver), as fast as they can or paced to a rate; the projector kept up if it reaches the
outbox head within DRAIN_BOUND seconds of the last checkout. The clone is vacuumed and analyzed
after the catch-up (autovacuum would otherwise start mid-run), and the run reports any other
session's transaction (see harness/bench/foreign.py).
"""

from __future__ import annotations

import time
import uuid
from dataclasses import dataclass, field

import pandas as pd
from hdrh.histogram import HdrHistogram
from psycopg.conninfo import conninfo_to_dict

from harness.bench.agreement import Agreement, check_projection
from harness.bench.clone import Progress, connect, dataset_of, value
from harness.bench.driver import Load, OrderCatalog, drive_checkout, order_ids
from harness.bench.errors import BenchError
from harness.bench.foreign import (
    ForeignHold,
    describe_foreign,
    held_back,
    watch_foreign_transactions,
)
from harness.collectors.lag import event_lag, read_batches
from harness.collectors.resources import cpu_seconds
from harness.deploy.projector import BATCH_SIZE, POLL_INTERVAL, ProjectorProcess, catch_up
from harness.deploy.provision import drop, provision, ready_for_load
from harness.postgres.servers import use_servers, work_dir
from implementations import registry
from implementations.interface import Config, Projection
from implementations.projector.positions import START, Position

KEY_PREFIX = "lag-"
DRAIN_BOUND = 1.0  # seconds after the last checkout within which a projector that kept up is done
LAG_RANGE_US = (1, 3_600_000_000)  # 1 us to 1 h, 3 significant digits
ACTIVE_TIMEOUT = 30  # seconds for the projector process to start and take the projection


@dataclass(frozen=True)
class LagResult:
    impl: str
    sf: float
    seed: int
    clients: int
    batch_size: int
    load: Load
    events: int  # events committed during the load, all applied (a commit may carry several)
    batches: int  # apply transactions that carried them
    lag_ms: dict[str, float]  # p50, p90, p99, p99.9, max, mean, per source commit
    p99_by_quarter_ms: list[float]  # by source commit time: growth means falling behind
    behind_at_end: int  # events committed but not applied when the last checkout returned
    drain_seconds: float | None  # from the last checkout until the checkpoint reached the head
    projector_cpu_seconds: float  # the projector process's, from active to caught up
    agreement: list[Agreement] = field(default_factory=list)
    foreign: ForeignHold = field(default_factory=ForeignHold)

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


def lag_histograms(events: pd.DataFrame, load: Load) -> tuple[HdrHistogram, list[HdrHistogram]]:
    """Time lag per source commit (`collectors.lag.event_lag`'s frame) of the commits made
    during the load: overall and per quarter of the load, by commit time."""
    overall, quarters = _histogram(), [_histogram() for _ in range(4)]
    started = pd.Timestamp(load.started_at, unit="s", tz="UTC")
    since = (events["source_commit"] - started).dt.total_seconds()
    during = since >= 0
    quarter = load.seconds / 4
    for lag_ms, offset in zip(events["lag_ms"][during], since[during], strict=True):
        lag_us = max(1, round(lag_ms * 1000))
        overall.record_value(lag_us)
        quarters[min(3, int(offset / quarter))].record_value(lag_us)
    return overall, quarters


def _events_of_load(batches: list[dict], load: Load) -> int:
    """The events committed during the load."""
    return sum(
        1
        for b in batches
        for commit in b["source_commits"]
        if commit is not None and commit >= load.started_at
    )


def _carried_load(batches: list[dict], load: Load) -> int:
    """The apply transactions that carried events committed during the load."""
    return sum(
        1
        for b in batches
        if (last := b["source_commits"][-1]) is not None and last >= load.started_at
    )


def measure_lag(
    dsn: str,
    *,
    clients: int = 8,
    duration: float = 20,
    batch_size: int = BATCH_SIZE,
    poll_interval: float = POLL_INTERVAL,
    progress: Progress = print,
    impl_name: str | None = None,
    read_dsn: str | None = None,
    rate: float | None = None,
) -> LagResult:
    """Time lag of a projector process while `clients` threads place orders, on the clone at `dsn`
    (read models in `read_dsn` for an implementation with a read server of its own) of
    `impl_name` (default: the first architecture with a projection)."""
    impl_name = impl_name or registry.projected()[0]
    config = Config(dsn, read_dsn or dsn, pool_size=clients)
    impl = registry.create(impl_name, config)
    impl.install()
    projection = impl.projection
    write_dsn, read_dsn = projection.source_dsn, projection.target_dsn
    if not value(write_dsn, "SELECT current_setting('track_commit_timestamp')::bool"):
        raise BenchError("the write server runs without track_commit_timestamp: no commit times")
    ready_for_load(write_dsn, read_dsn if read_dsn != write_dsn else None)
    started = time.perf_counter()  # the history, and an event store's stock raise: not the load
    replayed = catch_up(projection, batch_size)
    progress(f"caught up {replayed:,} events in {time.perf_counter() - started:.1f}s")
    catalog = OrderCatalog.of(*order_ids(write_dsn))
    orders_before = _orders(write_dsn)
    with connect(write_dsn) as conn:
        position_before = projection.source.head(conn) or START

    logs, stem = work_dir() / "logs", f"bench-lag-{conninfo_to_dict(write_dsn)['dbname']}"
    record = logs / f"{stem}.jsonl"  # the projector's --record-lag file, removed once read
    record.unlink(missing_ok=True)
    projector = ProjectorProcess(
        impl_name,
        config.write_dsn,
        config.read_dsn,
        logs / f"{stem}-projector.log",
        record_lag=record,
        batch_size=batch_size,
        poll_interval=poll_interval,
    )

    def ready() -> None:
        if projection.wait_caught_up(timeout=30, alive=projector.running) is None:
            projector.check()  # raises if the projector process failed
            raise BenchError("the projector did not apply the warm-up orders within 30s")

    try:
        projector.start()
        projector.wait_active(ACTIVE_TIMEOUT)
        cpu_at_start = cpu_seconds(projector.pid)  # what follows is projecting, not importing
        progress(
            f"projector process {projector.pid} active; {clients} clients place orders "
            f"for {duration:g}s"
        )
        impl.start()
        try:
            with watch_foreign_transactions(write_dsn) as foreign:
                load = drive_checkout(
                    impl,
                    catalog,
                    clients=clients,
                    duration=duration,
                    key_prefix=f"{KEY_PREFIX}{uuid.uuid4().hex[:8]}-",
                    rate=rate,
                    ready=ready,
                )
            ended = time.monotonic()
        finally:
            impl.stop()
        behind = projection.status().events_behind
        caught_up = projection.wait_caught_up(timeout=60, alive=projector.running)
        drain = None if caught_up is None else time.monotonic() - ended
        projector.check()  # raises if the projector process failed
        cpu = cpu_seconds(projector.pid) - cpu_at_start
    finally:
        projector.stop()
    batches = read_batches(record)
    record.unlink()
    drained = "never caught up" if drain is None else f"caught up {drain:.3f}s later"
    progress(
        f"  {load.committed:,} orders in {load.seconds:.1f}s; when they stopped "
        f"{behind:,} events were behind, {drained}"
    )
    _check_counts(projection, load, batches, drain, orders_before, position_before)
    agreement = (
        check_projection(write_dsn, read_dsn, source=projection.source) if drain is not None else []
    )
    overall, quarters = lag_histograms(event_lag(batches), load)
    sf, seed = dataset_of(write_dsn)
    return LagResult(
        impl=impl_name,
        sf=sf,
        seed=seed,
        clients=clients,
        batch_size=batch_size,
        load=load,
        events=_events_of_load(batches, load),
        batches=_carried_load(batches, load),
        lag_ms=_percentiles(overall),
        p99_by_quarter_ms=[_percentiles(q)["p99"] for q in quarters],
        behind_at_end=behind,
        drain_seconds=drain,
        projector_cpu_seconds=cpu,
        agreement=agreement,
        foreign=foreign,
    )


def _orders(write_dsn: str) -> int:
    """The orders in the write model (an event store's, through its views)."""
    with connect(write_dsn, truth=True) as conn:
        return conn.execute("SELECT count(*) FROM orders").fetchone()[0]


def _check_counts(
    projection: Projection,
    load: Load,
    batches: list[dict],
    drain: float | None,
    orders_before: int,
    position_before: Position,
) -> None:
    """The orders the clients counted and the events the projector recorded, against the
    database; BenchError if either differs."""
    gained = _orders(projection.source_dsn) - orders_before
    with connect(projection.source_dsn) as conn:
        appended = projection.source.behind(conn, position_before)[0]
    recorded = sum(len(b["source_commits"]) for b in batches)
    problems = []
    if gained != load.committed + load.warmup:
        problems.append(
            f"the database gained {gained:,} orders, the clients counted "
            f"{load.committed + load.warmup:,}"
        )
    if drain is not None and recorded != appended:
        problems.append(f"the projector recorded {recorded:,} events, {appended:,} were appended")
    if problems:
        raise BenchError("the lag measurement is not trustworthy: " + "; ".join(problems))


def lag_report(r: LagResult) -> str:
    lag = r.lag_ms
    errors = ", ".join(f"{k} {v}" for k, v in sorted(r.load.errors.items())) or "none"
    drained = "never" if r.drain_seconds is None else f"{r.drain_seconds:.3f}s later"
    return "\n".join(
        [
            f"projector time lag: {r.impl}, sf={r.sf:g} seed={r.seed}, projector in its own "
            f"process (batch size {r.batch_size:,}), {r.clients} checkout clients in-process",
            f"checkout        {r.load.committed:>9,} orders in {r.load.seconds:.1f}s = "
            f"{r.load.tps:,.1f} tps (errors: {errors})",
            f"events applied  {r.events:>9,} in {r.batches:,} batches "
            f"({r.events / max(r.batches, 1):.1f} per batch)",
            "time lag (apply commit of its last event - source commit, every commit made during "
            "the load), ms:",
            "     p50      p90      p99    p99.9      max     mean",
            " ".join(f"{lag[k]:>8.1f}" for k in ("p50", "p90", "p99", "p99.9", "max", "mean")),
            "p99 by quarter of the run (by commit time): "
            + ", ".join(f"{v:.1f}" for v in r.p99_by_quarter_ms)
            + " ms",
            f"when checkout stopped: {r.behind_at_end:,} events behind, caught up {drained}",
            f"projector CPU {r.projector_cpu_seconds:.1f}s from active to caught up "
            f"(checkout ran {r.load.seconds:.1f}s)",
            describe_foreign(r.foreign),
            "read models agree with the write model: "
            + ", ".join(f"{a.what} {a.write:,}" for a in r.agreement),
            "",
            f"kept up: {'yes' if r.kept_up else 'NO'} (caught up within {DRAIN_BOUND:g}s of the last "
            f"checkout); p99 {lag['p99']:.1f} ms (goal: under 100 ms)",
        ]
    )


def run_lag(
    *,
    impls: list[str],
    rate: float | None = None,
    write_dsn: str | None = None,
    read_dsn: str | None = None,
    sf: float = 0.1,
    seed: int = 42,
    **options,
) -> list[tuple[str, LagResult]]:
    """measure_lag (with its `options`) for each implementation in turn, each on run databases
    of its own, provisioned as a run's are and dropped afterwards (read models on the read server
    for an architecture that keeps them there), checkout paced at `rate` per second in total or,
    without one, as fast as the clients go."""
    progress = options.get("progress", print)
    results = []
    with use_servers(write_dsn, read_dsn, announce=progress) as servers:
        for name in impls:
            progress(f"--- {name}")
            dbs = provision(name, servers, sf=sf, seed=seed, progress=progress)
            try:
                result = measure_lag(
                    dbs.write_dsn, read_dsn=dbs.read_dsn, impl_name=name, rate=rate, **options
                )
            finally:
                drop(servers, dbs)
            results.append((name, result))
    return results


def lag_compare_report(results: list[tuple[str, LagResult]], rate: float | None) -> str:
    head = (
        f"{'implementation':16} {'checkouts/s':>11} {'events':>8} {'p50 ms':>8} {'p90 ms':>8} "
        f"{'p99 ms':>8} {'max ms':>8}  kept up"
    )
    pace = f"the same paced checkout rate (target {rate:g}/s)" if rate else "checkout at full speed"
    lines = [f"projection time lag side by side, {pace}", head]
    for name, r in results:
        lag = r.lag_ms
        lines.append(
            f"{name:16} {r.load.tps:11.1f} {r.events:8,} {lag['p50']:8.1f} {lag['p90']:8.1f} "
            f"{lag['p99']:8.1f} {lag['max']:8.1f}  {'yes' if r.kept_up else 'NO'}"
        )
    if any(held_back(r.foreign) for _, r in results):  # as each run's own line says
        lines.append("WARNING: another session's transaction held a projector back during a run")
    return "\n".join(lines)
