"""Latencies into HDR histograms per (epoch second, operation, kind), written once a second.

Kinds: "service" (each request's response time, from Locust's request event), "intended" (open
loop: completion minus the intended start) and "visibility" (the prober's read-your-writes time).
Seconds are keyed by completion time. Files, one line per flush, flushed as written:

  <out_dir>/seconds-<pid>.jsonl  {"second": 1767225600, "pid": 123, "ops": [{"operation": "checkout",
                                   "kind": "service", "count": 41, "errors": {"out_of_stock": 1},
                                   "retries": 3,
                                   "hdr": "<base64 HdrHistogram.encode(), successes only>"}],
                                  "users": {"Shopper": 8, "Analyst": 2}}
  <out_dir>/queries-<pid>.jsonl  {"operation": "dashboard_revenue", "started_at": 1767225600.25,
                                   "ok": true}

"retries": how many times the calls of the cell were retried by the implementation (a command
run again after a serialization failure or a deadlock), from the request event's context.

"users" (given a `users` callable): per user class, this process's users that were acting, counted
when the line is written (or when `hold_users()` was called). A second in which users acted but
no request completed has a line too, with no ops. A second may appear on more than one line
(and in several processes' files): `merge_seconds` adds the histograms up exactly, and the users
too (per process the last line's count of the second, summed over processes).

Without an out_dir (a Locust worker) nothing is written: finished lines wait in the recorder
until `take()` hands them over (to the master, which appends them to its own files with the
worker's index: workloads/distributed.py).
"""

from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator
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
    retries: int = 0


Users = dict[str, int]  # users per class


class Recorder:
    def __init__(
        self, out_dir: str | Path | None, clock=None, users: Callable[[], Users] | None = None
    ) -> None:
        self.clock = clock or time.time
        self.users = users  # per class, the process's users acting now (None: lines carry none)
        self.held: Users | None = None
        self.written_to: int | None = None  # lines were written up to this second (excluded)
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

    def record(
        self,
        operation: str,
        kind: str,
        micros: float,
        error: str | None = None,
        retries: int = 0,
    ) -> None:
        """One result now: a latency in microseconds, or an error of type `error`; `retries`:
        how many times the implementation retried the call."""
        key = (int(self.clock()), operation, kind)
        cell = self.cells.get(key) or self.cells.setdefault(key, Cell())
        cell.retries += retries
        if error is None:
            cell.histogram.record_value(clamp_us(micros))
        else:
            cell.errors[error] += 1

    def on_request(
        self,
        name: str,
        response_time: float,
        exception: BaseException | None = None,
        context: dict | None = None,
        **_kwargs: Any,
    ) -> None:
        """Listener for Locust's request event (response_time in milliseconds; the transports
        put the call's retries in its context)."""
        error = None if exception is None else error_type(exception)
        retries = (context or {}).get("retries", 0)
        self.record(name, "service", response_time * 1000.0, error, retries)

    def log_query(self, operation: str, started_at: float, ok: bool) -> None:
        self.queries.append({"operation": operation, "started_at": started_at, "ok": ok})

    # --- output

    def hold_users(self) -> None:
        """Give the users acting now to every line until `release_users()` (the test is stopping:
        its users leave before its last second is written)."""
        self.held = None if self.users is None else dict(self.users())

    def release_users(self) -> None:
        self.held = None

    def flush(self, everything: bool = False) -> None:
        """Write finished seconds (all seconds when `everything`) and the query log."""
        now = int(self.clock())
        done = sorted(k for k in self.cells if everything or k[0] < now)
        by_second: dict[int, list[dict]] = defaultdict(list)
        for key in done:
            cell = self.cells.pop(key)
            by_second[key[0]].append(
                {
                    "operation": key[1],
                    "kind": key[2],
                    "count": cell.histogram.get_total_count(),
                    "errors": dict(cell.errors),
                    "retries": cell.retries,
                    "hdr": cell.histogram.encode().decode("ascii"),
                }
            )
        lines = self._lines(by_second, now + 1 if everything else now)
        queries, self.queries = self.queries, []
        if self.out_dir is None:
            self.pending[0].extend(lines)
            self.pending[1].extend(queries)
        else:
            append_lines(self.seconds_path, lines)
            append_lines(self.queries_path, queries)

    def _lines(self, by_second: dict[int, list[dict]], end: int) -> list[dict]:
        """One line per second with ops and, with users acting, per second before `end` not
        written yet; each with the users counted now."""
        if self.users is None:
            return [{"second": s, "pid": self.pid, "ops": ops} for s, ops in by_second.items()]
        users = self.held if self.held is not None else dict(self.users())
        seconds = set(by_second)
        if self.written_to is not None and any(users.values()):
            seconds.update(range(self.written_to, end))
        self.written_to = max(end, self.written_to or end)
        return [
            {"second": s, "pid": self.pid, "ops": by_second.get(s, []), "users": users}
            for s in sorted(seconds)
        ]

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


Row = tuple[int, str, str, int, dict[str, int], HdrHistogram]


@dataclass
class Merged:
    """What `merge_seconds` gives: iterating it, the rows; `users`: second -> users per class;
    `retries`: (second, operation, kind) -> retries (only where there were any)."""

    rows: list[Row]
    users: dict[int, Users]
    retries: dict[tuple[int, str, str], int] = field(default_factory=dict)

    def __iter__(self) -> Iterator[Row]:
        return iter(self.rows)


def merge_seconds(paths: Iterable[str | Path]) -> Merged:
    """(second, operation, kind, count, errors, histogram) over several files, merged exactly,
    ordered by second, operation and kind; and the users of each second (per process, the last
    line's; summed over processes; lines without users, as older files have, add none)."""
    merged: dict[tuple[int, str, str], Cell] = {}
    last_users: dict[tuple, Users] = {}  # (second, process) -> users
    for path in paths:
        for row in read_seconds(path):
            for op in row["ops"]:
                key = (row["second"], op["operation"], op["kind"])
                cell = merged.setdefault(key, Cell())
                cell.histogram.add(HdrHistogram.decode(op["hdr"]))
                for kind, n in op["errors"].items():
                    cell.errors[kind] += n
                cell.retries += op.get("retries", 0)  # older files have none
            if "users" in row:
                process = (str(path), row.get("pid"), row.get("worker"))
                last_users[(row["second"], *process)] = row["users"]
    users: dict[int, Users] = {}
    for (second, *_process), counts in last_users.items():
        total = users.setdefault(second, {})
        for name, n in counts.items():
            total[name] = total.get(name, 0) + n
    rows = [
        (
            *key,
            merged[key].histogram.get_total_count(),
            dict(merged[key].errors),
            merged[key].histogram,
        )
        for key in sorted(merged)
    ]
    retries = {key: cell.retries for key, cell in merged.items() if cell.retries}
    return Merged(rows, {second: users[second] for second in sorted(users)}, retries)
