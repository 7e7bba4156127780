"""Which side of an implementation is reachable, and how fresh its read models are.

A daemon thread checks each database every `interval` seconds, so the API can say on every
response, at no cost to the request, whether the write side is up and as of when the read models
are: during a write-server outage, CQRS queries keep answering, stale, and say how stale.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import datetime

import psycopg

FRESHNESS = "SELECT last_source_commit FROM projection_checkpoint WHERE projection = 'orders'"


@dataclass
class SideState:
    write_up: bool | None = None  # None: not checked yet
    read_up: bool | None = None
    read_models_as_of: datetime | None = None  # source commit time of the newest applied event
    checked_at: datetime | None = None


class _Probe:
    """One long-lived connection to a database (a new one only after a failure), so watching
    costs the server one query per check, not a connection."""

    def __init__(self, dsn: str) -> None:
        self.dsn = dsn
        self.conn: psycopg.Connection | None = None
        self.lock = threading.Lock()  # the watch thread and /status both check

    def __call__(self, query: str) -> tuple[bool, object]:
        with self.lock:
            try:
                if self.conn is None:
                    self.conn = psycopg.connect(
                        self.dsn,
                        connect_timeout=2,
                        autocommit=True,
                        application_name="cqrs-bench:side-watch",
                    )
                row = self.conn.execute(query).fetchone()
                return True, row[0] if row else None
            except psycopg.Error:
                self._close()
                return False, None

    def _close(self) -> None:
        if self.conn is not None:
            self.conn.close()
            self.conn = None

    def close(self) -> None:
        with self.lock:
            self._close()


class SideWatch:
    def __init__(self, write_dsn: str, read_dsn: str | None, interval: float = 0.5) -> None:
        self.write_dsn, self.read_dsn, self.interval = write_dsn, read_dsn, interval
        self._write = _Probe(write_dsn)
        self._read = _Probe(read_dsn) if read_dsn is not None else None
        self.state = SideState()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="side-watch", daemon=True)

    def start(self) -> SideWatch:
        self.check()
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=5)
        for probe in (self._write, self._read):
            if probe is not None:
                probe.close()

    def check(self) -> SideState:
        write_up, _ = self._write("SELECT 1")
        read_up, as_of = (None, None)
        if self._read is not None:
            read_up, as_of = self._read(FRESHNESS)
        previous = self.state.read_models_as_of
        self.state = SideState(write_up, read_up, as_of or previous, datetime.now().astimezone())
        return self.state

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.check()
