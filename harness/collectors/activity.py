"""Active-session sampling of pg_stat_activity (DESIGN section 6): the `waits` table.

One round = one query per server. A row is a session that is doing something at that instant:
state active, idle in transaction (aborted), fastpath function call, or (for backends without a
state, such as background workers) waiting on something other than their idle main loop
(wait_event_type "Activity"). Idle sessions are not rows. wait_event_type "" means on CPU.

Rounds in which no session was busy have no rows, so the rounds are kept apart:
`ActivitySampler.rounds()` has one row per server per round (sample, server, ts, rows, query_ms),
so the number of rounds (and the sampler's own cost, query_ms) is always known. A share of time
in a wait is `count of rows in that wait / number of rounds`, per server.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime

import pandas as pd
import psycopg

from harness.collectors.base import COLLECTOR_APP, TS, Sampler, component_of, typed_frame

COLUMNS = {
    "sample": "int64",
    "ts": TS,
    "server": "str",
    "database": "str",
    "pid": "int64",
    "component": "str",
    "backend_type": "str",
    "state": "str",
    "wait_event_type": "str",
    "wait_event": "str",
    "blocked_by": "int64",
    "blocker_component": "str",
    "xact_age_ms": "float64",
    "query_id": "Int64",
}
ROUND_COLUMNS = {
    "sample": "int64",
    "server": "str",
    "ts": TS,
    "rows": "int64",
    "query_ms": "float64",
}

# pg_blocking_pids takes the lock manager's partition locks: it is only called (once) for
# sessions that wait on a heavyweight lock, the only waits it can report blockers for. Each
# blocker is named by its application_name (else its backend_type; '?' when it is not listed:
# gone, or a prepared transaction, pid 0).
HZ = 10  # samples per second: one sample of a waiting session stands for 1 / HZ seconds

QUERY = """
    SELECT now(), datname, pid, application_name, backend_type, state,
           wait_event_type, wait_event,
           CASE WHEN wait_event_type = 'Lock' THEN (
               SELECT array_agg(coalesce(nullif(b.application_name, ''), b.backend_type, '?'))
               FROM unnest(pg_blocking_pids(a.pid)) AS blocker(pid)
               LEFT JOIN LATERAL pg_stat_get_activity(blocker.pid) AS b ON true) END,
           greatest(extract(epoch FROM now() - xact_start) * 1000, 0)::float8,  -- now() is this round's start
           query_id
    FROM pg_stat_activity AS a
    WHERE pid <> pg_backend_pid()
      AND application_name IS DISTINCT FROM %(self)s
      AND (state IN ('active', 'idle in transaction', 'idle in transaction (aborted)',
                    'fastpath function call')
           OR (state IS NULL AND wait_event IS NOT NULL AND wait_event_type <> 'Activity'))
      AND {scope}
"""
ALL_CLIENTS = "backend_type = 'client backend'"
# the run's databases; and a standby's startup process when it waits (replay held back by a
# recovery conflict: RecoveryConflictSnapshot, RecoveryConflictLock, BufferPin, ...)
DATABASES = "(datname = ANY(%(databases)s) OR backend_type = 'startup')"


def blocker_components(blockers: list[str] | None) -> str:
    """The components of a session's blockers (their names), sorted, unique, joined by ","."""
    return ",".join(sorted({component_of(name) for name in blockers or ()}))


def collector_connection(dsn: str) -> psycopg.Connection:
    """An autocommit connection named cqrs-bench:collector, in UTC, that cannot hang for long."""
    return psycopg.connect(
        dsn,
        autocommit=True,
        application_name=COLLECTOR_APP,
        connect_timeout=5,
        options="-c timezone=UTC -c statement_timeout=5000 -c lock_timeout=2000",
    )


class PerServer(Sampler):
    """A sampler with one persistent collector connection per server or database (`dsns`: role
    -> DSN; a DSN given twice is connected once, under the first role), opened in start() (so a
    bad DSN fails at once, in the caller) and closed when the thread ends."""

    def __init__(self, dsns: dict[str, str], interval: float) -> None:
        super().__init__(interval)
        seen: dict[str, str] = {}
        for role, dsn in dsns.items():
            seen.setdefault(dsn, role)
        self.dsns = {role: dsn for dsn, role in seen.items()}
        self._conns: dict[str, psycopg.Connection] = {}

    def _open(self) -> None:
        try:
            for role, dsn in self.dsns.items():
                self._conns[role] = collector_connection(dsn)
        except Exception:
            self._close()
            raise

    def _close(self) -> None:
        for conn in self._conns.values():
            conn.close()
        self._conns.clear()


class ActivitySampler(PerServer):
    """Samples pg_stat_activity of every server `hz` times a second, on one connection each.

    servers: role -> admin DSN (e.g. {"write": ..., "read": ...}); a server that is given twice
    (same DSN) is sampled once, under the first role. databases: keep only sessions connected to
    these databases (any backend type, e.g. autovacuum workers too); default: all client
    backends. The sampler's own sessions (application_name cqrs-bench:collector) are excluded.

    stop() returns the `waits` frame (COLUMNS); rounds() the per-round record (ROUND_COLUMNS).
    """

    name = "activity"

    def __init__(
        self, servers: dict[str, str], hz: float = HZ, databases: set[str] | None = None
    ) -> None:
        super().__init__(servers, 1.0 / hz)
        self.databases = sorted(databases) if databases else None
        self.query = QUERY.format(scope=DATABASES if databases else ALL_CLIENTS)
        self._rows: list[tuple] = []
        self._rounds: list[tuple] = []
        self._sample_no = 0

    def _sample(self) -> None:
        params = {"self": COLLECTOR_APP, "databases": self.databases}
        n = self._sample_no
        for role, conn in self._conns.items():
            began = time.perf_counter()
            rows = conn.execute(self.query, params).fetchall()
            took = (time.perf_counter() - began) * 1000
            batch = [
                (
                    n,
                    ts,
                    role,
                    db,
                    pid,
                    component_of(app),
                    btype,
                    state,
                    wtype,
                    wevent,
                    len(blockers or ()),
                    blocker_components(blockers),
                    age,
                    qid,
                )
                for ts, db, pid, app, btype, state, wtype, wevent, blockers, age, qid in rows
            ]
            with self._lock:
                self._rows.extend(batch)
                self._rounds.append((n, role, datetime.now(UTC), len(rows), took))
        self._sample_no += 1

    def frame(self) -> pd.DataFrame:
        with self._lock:
            rows = list(self._rows)
        return typed_frame(pd.DataFrame(rows, columns=list(COLUMNS)), COLUMNS)

    def rounds(self) -> pd.DataFrame:
        """One row per server per round: sample, server, ts (client clock), rows, query_ms."""
        with self._lock:
            rounds = list(self._rounds)
        return typed_frame(pd.DataFrame(rounds, columns=list(ROUND_COLUMNS)), ROUND_COLUMNS)
