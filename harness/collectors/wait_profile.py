"""Wait events sampled inside the server by pg_wait_sampling (DESIGN section 6): the
`wait_profile` table.

The extension's background worker looks at every backend every 10 ms (100 Hz) and counts, per
pid, wait event and query, how often it found it so (`pg_wait_sampling_profile`, cumulative).
Once a second this collector reads that profile and keeps what each count grew by since the
last read: one row per pid, wait event and interval, the pid named by its component through
pg_stat_activity's application_name (as the `waits` table does), sessions of the run databases
only. There are no client round trips per sample, and the resolution is ten times the
pg_stat_activity sampler's.

What the extension samples, and what it cannot tell apart:
- a backend on CPU (no wait event) is sampled only by versions 1.1.6 and later, with
  `pg_wait_sampling.sample_cpu` on (its default); its row has wait_event_type "" (as in waits).
  Older versions (Debian 12 ships 1.1.4) count waits only: `probe()` says so (`cpu_sampled`).
- an idle session waits in Client:ClientRead, as does one between the statements of its
  transaction: the profile cannot tell them apart (pg_stat_activity's state can).

It is used when the server preloads the library and `CREATE EXTENSION IF NOT EXISTS
pg_wait_sampling` succeeds in the run database (`probe()`); otherwise the harness relies on the
pg_stat_activity sampler alone, and run.json records which was used.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pandas as pd
import psycopg

from harness.collectors.activity import PerServer, collector_connection
from harness.collectors.base import COLLECTOR_APP, TS, component_of, typed_frame

EXTENSION = "pg_wait_sampling"
PROFILE_HZ = 100  # pg_wait_sampling.profile_period's default, 10 ms: one sample stands for 10 ms
INTERVAL_S = 1.0

COLUMNS = {
    "ts": TS,
    "interval_ms": "float64",
    "server": "str",
    "database": "str",
    "pid": "int64",
    "component": "str",
    "backend_type": "str",
    "wait_event_type": "str",
    "wait_event": "str",
    "samples": "int64",
}

# The profile summed over queries, with each pid's session as pg_stat_activity lists it now (a
# pid that has ended is not listed: see WaitProfileSampler._sample).
QUERY = """
    WITH profile AS (
        SELECT pid, event_type, event, sum(count)::int8 AS samples
        FROM pg_wait_sampling_profile
        GROUP BY pid, event_type, event)
    SELECT now(), p.pid, a.datname, a.application_name, a.backend_type,
           p.event_type, p.event, p.samples
    FROM profile AS p
    LEFT JOIN pg_stat_activity AS a ON a.pid = p.pid AND a.pid <> pg_backend_pid()
"""


@dataclass(frozen=True)
class Probe:
    """Whether a server's pg_wait_sampling profile can be read (`usable`; else `reason` says
    why not), and whether it samples backends on CPU (`cpu_sampled`)."""

    usable: bool
    cpu_sampled: bool = False
    version: str = ""
    reason: str = ""


def probe(dsn: str) -> Probe:
    """Whether the server at `dsn` (the run database) has pg_wait_sampling loaded: its library
    preloaded, `CREATE EXTENSION IF NOT EXISTS pg_wait_sampling` succeeding there, and the
    profile kept per pid. Never raises for a server without it: the reason is in the Probe."""
    with collector_connection(dsn) as conn:
        try:
            preload = conn.execute("SHOW shared_preload_libraries").fetchone()[0]
        except psycopg.errors.InsufficientPrivilege:
            preload = None  # not ours to see (no pg_read_all_settings): the profile read says
        libraries = {name.strip().strip('"') for name in (preload or "").split(",")}
        if preload is not None and EXTENSION not in libraries:
            return Probe(False, reason=f"{EXTENSION} is not in shared_preload_libraries")
        try:
            conn.execute(f"CREATE EXTENSION IF NOT EXISTS {EXTENSION}")
            conn.execute("SELECT count(*) FROM pg_wait_sampling_profile").fetchone()
        except psycopg.Error as exc:
            return Probe(False, reason=f"{EXTENSION} not usable here: {exc}".strip())
        version, per_pid, cpu = conn.execute(
            "SELECT (SELECT extversion FROM pg_extension WHERE extname = %s),"
            " current_setting('pg_wait_sampling.profile_pid', true),"
            " current_setting('pg_wait_sampling.sample_cpu', true)",
            [EXTENSION],
        ).fetchone()
    if per_pid == "off":
        return Probe(False, version=version, reason="pg_wait_sampling.profile_pid is off")
    return Probe(True, cpu_sampled=cpu == "on", version=version or "")


class WaitProfileSampler(PerServer):
    """Reads the pg_wait_sampling profile of each server (role -> DSN of the run's database
    there; a DSN given twice is read once) every `interval` s, and keeps the samples each
    (pid, wait event) gained since the read before, for sessions of `databases` (all when None;
    the collectors' own sessions excluded).

    A row's `ts` is the start of the interval its samples fell in, `interval_ms` its length. The
    first read is the baseline and gives no rows. A pid that has ended between two reads gets
    its last interval (from the mapping of the read before); a pid that pg_stat_activity has
    never listed during the run is left out (another database's, or a process that ended).
    """

    name = "wait_profile"

    def __init__(
        self,
        servers: dict[str, str],
        databases: set[str] | None = None,
        interval: float = INTERVAL_S,
    ) -> None:
        super().__init__(servers, interval)
        self.databases = set(databases) if databases else None
        self._rows: list[tuple] = []
        # per server: the last read's time, counts per (pid, type, event), sessions per pid
        self._last: dict[str, tuple[datetime, dict, dict]] = {}

    def _wanted(self, database: str | None, app: str | None) -> bool:
        if app == COLLECTOR_APP:
            return False
        return self.databases is None or database in self.databases

    def _sample(self) -> None:
        for role, conn in self._conns.items():
            rows = conn.execute(QUERY).fetchall()
            now = rows[0][0] if rows else conn.execute("SELECT now()").fetchone()[0]
            counts: dict[tuple, int] = {}
            sessions: dict[int, tuple[str, str, str]] = {}
            for _ts, pid, db, app, btype, etype, event, samples in rows:
                key = (pid, etype or "", event or "")
                counts[key] = counts.get(key, 0) + samples
                if btype is not None and self._wanted(db, app):
                    sessions[pid] = (db or "", component_of(app), btype)
            batch = []
            if role in self._last:
                began, before, known = self._last[role]
                span_ms = (now - began).total_seconds() * 1000
                for (pid, etype, event), total in counts.items():
                    session = sessions.get(pid) or known.get(pid)
                    if session is None:
                        continue
                    previous = before.get((pid, etype, event), 0)
                    gained = total - previous if total >= previous else total  # reset between
                    if gained > 0:
                        db, component, btype = session
                        batch.append(
                            (began, span_ms, role, db, pid, component, btype, etype, event, gained)
                        )
            self._last[role] = (now, counts, sessions)
            with self._lock:
                self._rows.extend(batch)

    def frame(self) -> pd.DataFrame:
        with self._lock:
            rows = list(self._rows)
        return typed_frame(pd.DataFrame(rows, columns=list(COLUMNS)), COLUMNS)
