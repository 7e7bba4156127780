"""`cqrs-bench bench aggregates`: what an event-sourced architecture costs before it decides.

On a fresh clone of the dataset, the architecture is installed as a run's template is built (the
history converted into its event store, the long product streams snapshotted, the read models
projected), each step timed. Then the hottest product (the longest stream) is loaded again and
again, alternating between a store that reads snapshots and one that folds every event, and the
load times' p50 and p99 are printed with 95% bootstrap intervals.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial

import numpy as np

from harness.analysis.compare import bootstrap_interval
from harness.bench.clone import Progress, dataset_of, fresh_clone
from harness.bench.errors import BenchError
from harness.deploy.provision import catch_up
from implementations import registry
from implementations.interface import Config

SIDES = {"snapshots": True, "every event": False}  # how each side loads: from a snapshot?


@dataclass(frozen=True)
class Quantile:
    value_ms: float
    low_ms: float
    high_ms: float

    def text(self) -> str:
        return f"{self.value_ms:8.2f} ms [{self.low_ms:.2f}, {self.high_ms:.2f}]"


@dataclass
class AggregateResult:
    impl: str
    sf: float
    seed: int
    install_seconds: float = 0.0
    project_seconds: float = 0.0
    events: int = 0
    stream: str = ""
    stream_events: int = 0
    snapshot_version: int | None = None
    loads: dict[str, list[float]] = field(default_factory=dict)  # side -> seconds per load

    def quantile(self, side: str, q: float) -> Quantile:
        return quantile(np.asarray(self.loads[side]) * 1000, q)


def quantile(values: np.ndarray, q: float, resamples: int = 2000) -> Quantile:
    """The q-quantile of `values` with its 95% bootstrap interval (values drawn with
    replacement)."""
    low, high = bootstrap_interval(values, partial(np.quantile, q=q), resamples)
    return Quantile(float(np.quantile(values, q)), low, high)


def measure(dsn: str, loads: int, progress: Progress = print, impl: str = "") -> AggregateResult:
    """Install the event-sourced `impl` (default: the first) on the clone at `dsn`, time it,
    then time `loads` loads of its hottest product each way."""
    impl = impl or (registry.event_sourced() or [""])[0]
    if impl not in registry.event_sourced():
        raise BenchError(f"{impl or 'no architecture'} is not event-sourced")
    implementation = registry.create(impl, Config(dsn, dsn))
    result = AggregateResult(impl, *dataset_of(dsn))
    started = time.perf_counter()
    implementation.install()
    result.install_seconds = time.perf_counter() - started
    progress(f"history converted and snapshotted in {result.install_seconds:.1f}s")
    started = time.perf_counter()
    result.events = catch_up(implementation.projection)
    result.project_seconds = time.perf_counter() - started
    progress(f"projected {result.events:,} events in {result.project_seconds:.1f}s")
    stores = implementation.aggregate_stores()
    try:
        result.stream, result.stream_events, result.snapshot_version = stores.hottest()
        progress(f"hottest stream {result.stream}: {result.stream_events:,} events")
        result.loads = {side: [] for side in SIDES}
        for _ in range(5):  # warm both: connections, caches, the plan
            for side in SIDES:
                stores.load(SIDES[side], result.stream)
        for _ in range(loads):
            for side in SIDES:
                began = time.perf_counter()
                stores.load(SIDES[side], result.stream)
                result.loads[side].append(time.perf_counter() - began)
    finally:
        stores.close()
    return result


def run(
    *, write_dsn: str | None, sf: float, seed: int, loads: int, progress: Progress = print
) -> AggregateResult:
    with fresh_clone(write_dsn, sf, seed, "bench_aggregates", progress) as dsn:
        return measure(dsn, loads, progress)


def report(result: AggregateResult) -> str:
    lines = [
        f"{result.impl}, sf {result.sf:g} seed {result.seed}: history into the event store and "
        f"its snapshots {result.install_seconds:.1f}s, {result.events:,} events projected in "
        f"{result.project_seconds:.1f}s ({result.events / max(result.project_seconds, 1e-9):,.0f}"
        " events/s)",
        f"hottest stream {result.stream}: {result.stream_events:,} events, newest snapshot at "
        f"version {result.snapshot_version}",
        f"{'load':<12} {'p50 [95% interval]':>30} {'p99 [95% interval]':>30}",
    ]
    for side in SIDES:
        lines.append(
            f"{side:<12} {result.quantile(side, 0.5).text():>30} "
            f"{result.quantile(side, 0.99).text():>30}"
        )
    return "\n".join(lines)
