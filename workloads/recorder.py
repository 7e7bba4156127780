"""Latencies into HDR histograms per (epoch second, operation, kind), written once a second.

Kinds: "service" (each request's response time, from Locust's request event), "intended" (open
loop: completion minus the intended start) and "visibility" (the prober's read-your-writes time).
Seconds are keyed by completion time. Files, one line per flush, flushed as written:

  <out_dir>/seconds-<pid>.jsonl  {"second": 1767225600, "pid": 123, "ops": [{"operation": "checkout",
                                   "kind": "service", "count": 41, "errors": {"out_of_stock": 1},
                                   "hdr": "<base64 HdrHistogram.encode(), successes only>"}]}
  <out_dir>/queries-<pid>.jsonl  {"operation": "dashboard_revenue", "started_at": 1767225600.25,
                                   "ok": true}

A second may appear on more than one line (and in several processes' files): `merge_seconds`
adds them up exactly.

Without an out_dir (a Locust worker) nothing is written: finished lines wait in the recorder
until `take()` hands them over (to the master, which appends them to its own files with the
worker's index: workloads/distributed.py).
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

from workloads.users import error_type

LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS = 1, 3_600_000_000, 3
KINDS = ("service", "intended", "visibility")


def new_histogram() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, SIGNIFICANT_DIGITS)


def clamp_us(micros: float) -> int:
    return min(max(round(micros), LOWEST_US), HIGHEST_US)


@dataclass
class Cell:
    histogram: HdrHistogram = field(default_factory=new_histogram)
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))


class Recorder:
    def __init__(self, out_dir: str | Path | None, clock=None) -> None:
        self.clock = clock or time.time
        self.pid = os.getpid()
        self.out_dir = None if out_dir is None else Path(out_dir)
        if self.out_dir is not None:
            self.out_dir.mkdir(parents=True, exist_ok=True)
            self.seconds_path = self.out_dir / f"seconds-{self.pid}.jsonl"
            self.queries_path = self.out_dir / f"queries-{self.pid}.jsonl"
        self.cells: dict[tuple[int, str, str], Cell] = {}
        self.queries: list[dict] = []
        self.pending: tuple[list[dict], list[dict]] = ([], [])  # no out_dir: lines for take()
        self._greenlet = None

    # --- input

    def record(self, operation: str, kind: str, micros: float, error: str | None = None) -> None:
        """One result now: a latency in microseconds, or an error of type `error`."""
        key = (int(self.clock()), operation, kind)
        cell = self.cells.get(key) or self.cells.setdefault(key, Cell())
        if error is None:
            cell.histogram.record_value(clamp_us(micros))
        else:
            cell.errors[error] += 1

    def on_request(self, name: str, response_time: float, exception: BaseException | None = None,
                   **_kwargs: Any) -> None:  # fmt: skip
        """Listener for Locust's request event (response_time in milliseconds)."""
        error = None if exception is None else error_type(exception)
        self.record(name, "service", response_time * 1000.0, error)

    def log_query(self, operation: str, started_at: float, ok: bool) -> None:
        self.queries.append({"operation": operation, "started_at": started_at, "ok": ok})

    # --- output

    def flush(self, everything: bool = False) -> None:
        """Write finished seconds (all seconds when `everything`) and the query log."""
        now = int(self.clock())
        done = sorted(k for k in self.cells if everything or k[0] < now)
        by_second: dict[int, list[dict]] = defaultdict(list)
        for key in done:
            cell = self.cells.pop(key)
            by_second[key[0]].append({
                "operation": key[1], "kind": key[2], "count": cell.histogram.get_total_count(),
                "errors": dict(cell.errors), "hdr": cell.histogram.encode().decode("ascii"),
            })  # fmt: skip
        lines = [
            {"second": second, "pid": self.pid, "ops": ops} for second, ops in by_second.items()
        ]
        queries, self.queries = self.queries, []
        if self.out_dir is None:
            self.pending[0].extend(lines)
            self.pending[1].extend(queries)
        else:
            append_lines(self.seconds_path, lines)
            append_lines(self.queries_path, queries)

    def take(self) -> tuple[list[dict], list[dict]]:
        """No out_dir: the finished seconds' lines and the query lines not taken yet."""
        self.flush()
        taken, self.pending = self.pending, ([], [])
        return taken

    def start(self, interval_s: float = 1.0) -> None:
        """Flush once per `interval_s` in a greenlet until `stop()`."""
        import gevent

        def loop() -> None:
            while True:
                gevent.sleep(interval_s - (self.clock() % interval_s) + 0.01)
                self.flush()

        if self._greenlet is None:
            self._greenlet = gevent.spawn(loop)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill()
            self._greenlet = None
        self.flush(everything=True)


def append_lines(path: Path, lines: list[dict], **extra: Any) -> None:
    """Append JSON lines (each with `extra` fields added), flushed line by line."""
    if lines:
        with path.open("a") as f:
            for line in lines:
                f.write(json.dumps(line | extra if extra else line) + "\n")
                f.flush()


def read_seconds(path: str | Path) -> Iterator[dict]:
    with Path(path).open() as f:
        for line in f:
            if line.strip():
                yield json.loads(line)


def merge_seconds(
    paths: Iterable[str | Path],
) -> Iterator[tuple[int, str, str, int, dict[str, int], HdrHistogram]]:
    """(second, operation, kind, count, errors, histogram) over several files, merged exactly,
    ordered by second, operation and kind."""
    merged: dict[tuple[int, str, str], Cell] = {}
    for path in paths:
        for row in read_seconds(path):
            for op in row["ops"]:
                key = (row["second"], op["operation"], op["kind"])
                cell = merged.setdefault(key, Cell())
                cell.histogram.add(HdrHistogram.decode(op["hdr"]))
                for kind, n in op["errors"].items():
                    cell.errors[kind] += n
    for key in sorted(merged):
        cell = merged[key]
        yield (*key, cell.histogram.get_total_count(), dict(cell.errors), cell.histogram)
