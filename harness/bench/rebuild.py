"""`bench rebuild`: the projector's catch-up rate. A dataset clone's whole event source (its seeded
history) is replayed into empty read models, timed per batch size; afterwards the checkpoint must
be at the source's head and the read models must agree with the write model, or the run fails."""

from __future__ import annotations

import time
from dataclasses import dataclass

from harness.bench.agreement import Agreement, check_projection
from harness.bench.clone import Progress, connect, dataset_of, fresh_clone
from harness.bench.errors import BenchError
from harness.deploy.projector import BATCH_SIZE
from implementations import registry
from implementations.interface import Config
from implementations.projector.positions import START

GOAL = 20_000  # events per second


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
    impl: str
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


def measure_rebuild(
    dsn: str, batch_sizes: list[int], progress: Progress = print, impl: str | None = None
) -> RebuildResult:
    """Rebuild `impl`'s projection (default: the first architecture with one) from the whole
    event source (the outbox, or an event store) once per batch size, on the clone at `dsn`."""
    impl = impl or registry.projected()[0]
    implementation = registry.create(impl, Config(dsn, dsn))
    implementation.install()
    projection = implementation.projection
    write_dsn, read_dsn = projection.source_dsn, projection.target_dsn
    with connect(write_dsn) as conn:  # every event of its source (the outbox, an event store)
        events = projection.source.behind(conn, START)[0]
    runs, agreement = [], []
    for size in batch_sizes:
        progress(f"rebuilding {events:,} events, batch size {size:,}")
        with projection.projector(batch_size=size) as projector:
            started = time.perf_counter()
            applied = projector.rebuild(_throttled(progress, events, started))
            seconds = time.perf_counter() - started
        if applied != events:
            raise BenchError(f"the rebuild applied {applied:,} events; the source holds {events:,}")
        agreement = check_projection(write_dsn, read_dsn, source=projection.source)
        runs.append(RebuildRun(size, applied, seconds))
        progress(
            f"  {applied:,} events in {seconds:.2f}s: {applied / seconds:,.0f} events/s; "
            "checkpoint at the source's head, read models agree"
        )
    return RebuildResult(impl, *dataset_of(write_dsn), events, runs, agreement)


def rebuild_report(result: RebuildResult) -> str:
    best = max(result.runs, key=lambda r: r.rate)
    return "\n".join(
        [
            f"projector rebuild: {result.impl}, sf={result.sf:g} seed={result.seed}, "
            f"{result.outbox_events:,} events of its source replayed into empty read models",
            "batch size      events   seconds    events/s",
            *(
                f"{r.batch_size:>10,} {r.events:>11,} {r.seconds:>9.2f} {r.rate:>11,.0f}"
                for r in result.runs
            ),
            "after each rebuild: checkpoint = the source's head, and write model = read models for",
            "  " + ", ".join(f"{a.what} {a.write:,}" for a in result.agreement),
            "",
            f"best {best.rate:,.0f} events/s at batch size {best.batch_size:,} "
            f"(goal: at least {GOAL:,} events/s)",
        ]
    )


def run_rebuild(
    *,
    write_dsn: str | None = None,
    sf: float = 1.0,
    seed: int = 42,
    batch_sizes: list[int] | None = None,
    impl: str | None = None,
    progress: Progress = print,
) -> RebuildResult:
    """measure_rebuild on a fresh clone of the (sf, seed) dataset, dropped afterwards."""
    with fresh_clone(write_dsn, sf, seed, "bench_projector", progress) as dsn:
        return measure_rebuild(dsn, batch_sizes or [BATCH_SIZE], progress, impl)
