"""A streaming standby's replay, for an architecture that reads one: the `replay` table, and its
`lag`, `event_lag` and `freshness` rows (the same tables, the same definitions as a projection's).

ReplaySampler polls the standby 100 times a second on one connection: its replay position and
`pg_last_xact_replay_timestamp()`, the commit time (on the primary) of the last transaction it
replayed. When it stops it reads, from the primary, the commit time of every transaction that
ended while it sampled (`pg_xact_commit_timestamp`, `track_commit_timestamp = on`).

From the two, every primary commit gets a replay time: the first sample at which the standby had
replayed a commit at least as recent (commit records are replayed in WAL order, and commit times
follow it). That is an upper bound, late by at most one sampling interval (10 ms), never early:
a standby that falls behind is never reported fresh. Then, as for a projection:
- event_lag: per primary commit, replay time minus commit time;
- lag: at each sample (10 a second kept), the commits not yet replayed and the age of the oldest;
- freshness: a dashboard query started at t saw t minus the commit time of the oldest commit
  made by t and not replayed by t; 0 when there is none.
"""

from __future__ import annotations

from datetime import UTC, datetime

import numpy as np
import pandas as pd

from harness.collectors.activity import collector_connection
from harness.collectors.base import TS, Sampler, typed_frame
from harness.collectors.lag import LAG_COLUMNS, _ns, commit_lag, freshness

INTERVAL = 0.01  # seconds between samples of the standby
LAG_EVERY = 10  # keep every 10th sample in the lag table (10 a second)
REPLAY_COLUMNS = {"ts": TS, "replay_lsn_bytes": "float64", "last_replayed_commit": TS}
SAMPLE = """
    SELECT pg_wal_lsn_diff(pg_last_wal_replay_lsn(), '0/0')::float8,
           pg_last_xact_replay_timestamp()
"""
# the oldest transaction still running: every transaction that ends from now on is at least it
OLDEST_RUNNING = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
NEXT_XID = "SELECT pg_snapshot_xmax(pg_current_snapshot())::text::bigint"
COMMITS = """
    SELECT extract(epoch FROM pg_xact_commit_timestamp(xid(x::text::xid8)))::float8
    FROM generate_series(%s::bigint, %s::bigint - 1) x
"""


class ReplaySampler(Sampler):
    """Polls the standby's replay (`standby_dsn`: any database there) every `interval` s and, at
    the end, reads the primary's commit times (`primary_dsn`: any database there)."""

    name = "replay"

    def __init__(self, primary_dsn: str, standby_dsn: str, interval: float = INTERVAL) -> None:
        super().__init__(interval)
        self.primary_dsn, self.standby_dsn = primary_dsn, standby_dsn
        self._conn = None
        self._first_xid: int | None = None
        self._rows: list[tuple] = []
        self.commits = np.array([], dtype="float64")  # epoch seconds, once stopped

    def _open(self) -> None:
        with collector_connection(self.primary_dsn) as primary:
            self._first_xid = primary.execute(OLDEST_RUNNING).fetchone()[0]
        self._conn = collector_connection(self.standby_dsn)

    def _sample(self) -> None:
        replayed, last_commit = self._conn.execute(SAMPLE).fetchone()
        ts = datetime.now(UTC)  # after the answer: the standby had replayed at least this by ts
        with self._lock:
            self._rows.append((ts, replayed, last_commit))

    def _close(self) -> None:
        if self._conn is not None:
            self._conn.close()
        with collector_connection(self.primary_dsn) as primary:
            last = primary.execute(NEXT_XID).fetchone()[0]
            times = [row[0] for row in primary.execute(COMMITS, (self._first_xid, last))]
        self.commits = np.sort(np.array([t for t in times if t is not None], dtype="float64"))

    def latest(self) -> str | None:
        """The last poll, for a progress line: the age of the last commit the standby replayed
        (under a steady load, about its replay lag); None before one."""
        with self._lock:
            if not self._rows or self._rows[-1][2] is None:
                return None
            ts, _replayed, last_commit = self._rows[-1]
        return f"last replayed commit {(ts - last_commit).total_seconds() * 1000:.0f} ms old"

    def frame(self) -> pd.DataFrame:
        with self._lock:
            rows = list(self._rows)
        return typed_frame(pd.DataFrame(rows, columns=list(REPLAY_COLUMNS)), REPLAY_COLUMNS)


def replayed_at(samples: pd.DataFrame, commits: np.ndarray) -> pd.DataFrame:
    """Per primary commit made while the standby was sampled: source_commit, and applied_at, the
    first sample at which the standby had replayed it (NaT when it never had)."""
    ts, _ = _ns(samples["ts"])
    last, missing = _ns(samples["last_replayed_commit"])
    last = np.where(missing, np.iinfo("int64").min, last)
    replayed_by = np.maximum.accumulate(last) if len(last) else last
    # commit times are whole microseconds: rounded so, float seconds compare exactly
    commit_ns = np.round(np.asarray(commits, dtype="float64") * 1e6).astype("int64") * 1000
    if len(ts):
        commit_ns = commit_ns[commit_ns >= ts[0]]  # before the first sample: unknown
    first = np.searchsorted(replayed_by, commit_ns, side="left")
    seen = first < len(ts)
    applied = ts[np.minimum(first, len(ts) - 1)] if len(ts) else np.zeros(len(commit_ns), "int64")
    return pd.DataFrame(
        {
            "source_commit": pd.to_datetime(commit_ns, unit="ns", utc=True),
            "applied_at": pd.Series(pd.to_datetime(applied, unit="ns", utc=True)).where(seen),
        }
    )


def replay_tables(
    samples: pd.DataFrame, commits: np.ndarray, queries: pd.DataFrame
) -> dict[str, pd.DataFrame]:
    """The standby's `event_lag`, `lag` and `freshness` frames (see the module's docstring). A
    commit the standby never was seen to replay is pending until the end (after the last
    sample): it counts in lag and freshness and has no event_lag row."""
    pairs = replayed_at(samples, commits)
    replayed = pairs.dropna(subset=["applied_at"])
    events = commit_lag(
        [c.timestamp() for c in replayed["source_commit"]],
        [a.timestamp() for a in replayed["applied_at"]],
    )
    events.attrs["never_replayed"] = len(pairs) - len(replayed)
    end = samples["ts"].max() + pd.Timedelta(seconds=1) if len(samples) else pd.NaT
    pending = pairs.assign(applied_at=pairs["applied_at"].fillna(end))
    return {
        "event_lag": events,
        "lag": _lag(samples.iloc[::LAG_EVERY], pending),
        "freshness": freshness(pending, queries),
    }


def _lag(samples: pd.DataFrame, pairs: pd.DataFrame) -> pd.DataFrame:
    """At each sample: commits made by then and not yet replayed, and the oldest one's age."""
    ts, _ = _ns(samples["ts"])
    commit, _ = _ns(pairs["source_commit"])
    applied, _ = _ns(pairs["applied_at"])
    behind, oldest = [], []
    for at in ts:
        pending = (commit <= at) & (applied > at)
        behind.append(int(pending.sum()))
        oldest.append((at - commit[pending].min()) / 1e6 if pending.any() else np.nan)
    frame = pd.DataFrame(
        {"ts": samples["ts"].to_numpy(), "events_behind": behind, "oldest_unapplied_age_ms": oldest}
    )
    return typed_frame(frame, LAG_COLUMNS)
