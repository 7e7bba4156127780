"""The projection engine: read a batch in commit order, apply it with the checkpoint, repeat.

- Reads happen on an autocommit connection to the write database, outside the apply transaction,
  through the projection's Source (source.py; the outbox's by default).
- Each batch is applied to the read database in one transaction that also advances the checkpoint
  by compare-and-set; a full batch loops at once.
- LISTEN on the write database (the source's channel) is only a wake-up hint; without a
  notification the projector still polls every `poll_interval` seconds.
- One active projector per projection: a session advisory lock on the read database. A second
  projector waits as a standby until the first one's session ends.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime
from importlib.resources import files

import psycopg
from psycopg import sql

from implementations import read_model
from implementations.projector import checkpoint
from implementations.projector.outbox_reader import OUTBOX
from implementations.projector.positions import Position
from implementations.projector.source import Batch, Source
from implementations.read_model.apply import apply

PROJECTION = "orders"
LOCK_NAMESPACE = 0x70726F6A  # "proj"
MIN_BACKOFF, MAX_BACKOFF = 0.1, 5.0  # seconds between reconnection attempts


def lock_key(projection: str) -> int:
    """The advisory lock key of a projection (within LOCK_NAMESPACE): one active projector."""
    return zlib.crc32(projection.encode()) - 2**31


@dataclass(frozen=True)
class Applied:
    """What one applied batch did, for lag measurement: source commit times and apply time."""

    count: int
    last: Position
    source_commits: list[datetime | None]
    applied_at: float  # time.time() right after the apply transaction committed


def _connect(dsn: str, component: str, autocommit: bool) -> psycopg.Connection:
    return psycopg.connect(
        dsn,
        autocommit=autocommit,
        application_name=f"cqrs-bench:{component}",
        # Everything the projector touches is hot in shared buffers: with the default
        # random_page_cost (4) the planner picked hash joins over whole-table scans of rm_orders
        # and rm_order_lines for CONTRIBUTE's lookups, at random (about half of sf 1 rebuilds).
        options="-c timezone=UTC -c random_page_cost=1.1",
        connect_timeout=5,
    )


def install(write_dsn: str, read_dsn: str, name: str = PROJECTION) -> None:
    """Create the read models and checkpoint (read side) and the wake-up trigger (write side)."""
    with _connect(read_dsn, "projector-install", autocommit=False) as conn:
        conn.execute(read_model.schema_sql())
        checkpoint.ensure(conn, name)
    with _connect(write_dsn, "projector-install", autocommit=False) as conn:
        conn.execute(files(__package__).joinpath("notify.sql").read_text())


class Projector:
    def __init__(
        self,
        write_dsn: str,
        read_dsn: str,
        *,
        source: Source = OUTBOX,
        name: str = PROJECTION,
        batch_size: int = 1000,
        poll_interval: float = 0.5,
        on_applied: Callable[[Applied], None] | None = None,
    ) -> None:
        self.write_dsn, self.read_dsn, self.name = write_dsn, read_dsn, name
        self.event_source = source  # what events are read from; self.source: the connection to it
        self.batch_size, self.poll_interval = batch_size, poll_interval
        self.on_applied = on_applied
        self.source: psycopg.Connection | None = None
        self.target: psycopg.Connection | None = None
        self.listener: psycopg.Connection | None = None

    # -- connections and the single-active lock ----------------------------------------------

    def open(self) -> None:
        self.source = _connect(self.write_dsn, "projector", autocommit=True)
        self.target = _connect(self.read_dsn, "projector", autocommit=False)
        self.read = self.event_source.reader(self.source)

    def close(self) -> None:
        for conn in (self.listener, self.source, self.target):
            if conn is not None:
                conn.close()  # never raises, also on a broken connection
        self.source = self.target = self.listener = None

    def __enter__(self) -> Projector:
        self.open()
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def lock_key(self) -> int:
        return lock_key(self.name)

    def try_lock(self) -> bool:
        """Become the active projector of this projection (held until the session ends)."""
        row = self.target.execute(
            "SELECT pg_try_advisory_lock(%s, %s)", (LOCK_NAMESPACE, self.lock_key())
        ).fetchone()
        self.target.commit()
        return row[0]

    # -- the work ------------------------------------------------------------------------------

    def step(self) -> Batch:
        """Read one batch after the checkpoint and apply it with the checkpoint; return it."""
        current = checkpoint.load(self.target, self.name)
        self.target.commit()
        batch = self.read(current.at, self.batch_size)
        self._apply(current, batch)
        return batch

    def _apply(self, current: checkpoint.Checkpoint, batch: Batch) -> checkpoint.Checkpoint:
        """Apply `batch` with the checkpoint moving from `current`; the new checkpoint."""
        if not batch.events:  # every token is an event's position: nothing to record
            return current
        last = batch.events[-1].at
        horizon = current.horizon if batch.full else batch.horizon
        commits = [e.committed_at for e in batch.events]
        with self.target.transaction():
            apply(self.target, batch.events)
            checkpoint.advance(
                self.target,
                self.name,
                current.at,
                last,
                horizon=horizon,
                count=len(batch.events),
                source_commit=commits[-1],
            )
        if self.on_applied:
            self.on_applied(Applied(len(batch.events), last, commits, time.time()))
        return checkpoint.Checkpoint(last, max(horizon, current.horizon))

    def catch_up(self, progress: Callable[[int], None] | None = None) -> int:
        """Apply batches until one comes back short; return the number of events applied.

        The next batch is read (on the source connection, in a reader thread) while the current
        one is applied: reading and decoding overlap with the apply transaction.
        """
        current = checkpoint.load(self.target, self.name)
        self.target.commit()
        total = 0
        with ThreadPoolExecutor(1, thread_name_prefix="outbox-reader") as reader:

            def read(after: Position) -> Future[Batch]:
                return reader.submit(self.read, after, self.batch_size)

            pending = read(current.at)
            while True:
                batch = pending.result()
                if batch.full:
                    pending = read(batch.events[-1].at)
                current = self._apply(current, batch)
                total += len(batch.events)
                if progress and batch.events:
                    progress(total)
                if not batch.full:
                    return total

    def rebuild(self, progress: Callable[[int], None] | None = None) -> int:
        """Empty every read model and the checkpoint, then replay the source's whole history."""
        with self.target.transaction():
            read_model.truncate(self.target)
            checkpoint.reset(self.target, self.name)
        return self.catch_up(progress)

    def run(
        self,
        stop: threading.Event,
        *,
        on_standby: Callable[[], None] | None = None,
        on_outage: Callable[[Exception, float], None] | None = None,
    ) -> None:
        """Project until `stop` is set: as the active projector, or waiting as a standby.

        When either server goes away, reconnect with exponential backoff (up to MAX_BACKOFF
        seconds) and carry on from the checkpoint: the compare-and-set makes a batch whose
        commit was lost with the connection count exactly once.
        """
        self._backoff = MIN_BACKOFF
        while not stop.is_set():
            try:
                if self.target is None:
                    self.open()
                self._project(stop, on_standby)
                return
            except psycopg.OperationalError as exc:
                wait = self._backoff
                if on_outage:
                    on_outage(exc, wait)
                self.close()
                if stop.wait(wait):
                    return
                self._backoff = min(wait * 2, MAX_BACKOFF)

    def _project(self, stop: threading.Event, on_standby: Callable[[], None] | None) -> None:
        while not self.try_lock():
            if on_standby:
                on_standby()
            if stop.wait(self.poll_interval):
                return
        self.listener = _connect(self.write_dsn, "projector-listen", autocommit=True)
        self.listener.execute(
            sql.SQL("LISTEN {}").format(sql.Identifier(self.event_source.channel))
        )
        while not stop.is_set():
            full = self.step().full
            self._backoff = (
                MIN_BACKOFF  # working again: the next outage starts from the shortest wait
            )
            if full:
                continue
            self._wait_for_hint()

    def _wait_for_hint(self) -> None:
        """Until a notification arrives or the poll interval passes; drain what is queued."""
        for _ in self.listener.notifies(timeout=self.poll_interval, stop_after=1):
            break
