"""Other sessions' transactions during a projector benchmark. The outbox is read below the
server-wide xmin, so a long transaction in any database of the write server holds the projector
back and distorts its lag: the benchmark reports the longest one it saw."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from harness.bench.clone import connect

WARN_SECONDS = 0.1  # another session's transaction this long distorts the lag

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
        with connect(dsn) as conn:
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


def held_back(hold: ForeignHold) -> bool:
    """Whether another session's transaction ran long enough to distort the lag."""
    return hold.seconds >= WARN_SECONDS


def describe_foreign(hold: ForeignHold) -> str:
    if not held_back(hold):
        return (
            "no other session held the outbox back (none ran a transaction with an xid for "
            f"{WARN_SECONDS:g}s or more)"
        )
    return (
        f"WARNING: another session ({hold.who}) ran a transaction for {hold.seconds:.1f}s "
        "during the load; the server-wide xmin held the projector back: use quiet servers"
    )
