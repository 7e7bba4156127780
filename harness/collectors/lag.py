"""Projection lag (DESIGN section 6): the `lag`, `event_lag` and `freshness` tables.

- LagSampler polls the projection's status during the run: events committed but not applied,
  and the age of the oldest of them.
- event_lag() turns the projector's per-batch records (one JSON line per applied batch:
  {"applied_at": epoch s, "source_commits": [epoch s or null, ...], one per event}) into one row
  per source commit: the applied_at of its last event minus its commit time.
- freshness() gives each dashboard query the staleness it saw (HATtrick's definition): a query
  started at t sees freshness t - (the oldest source commit with source_commit <= t <
  applied_at), 0 when there is none.
- view_freshness() does the same for an architecture with a refresher: a query started at t on a
  materialized view sees t - the start of the last refresh of that view that ended by t.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from harness.collectors.activity import collector_connection
from harness.collectors.base import TS, Sampler, epoch_utc, typed_frame
from implementations.projector.outbox_reader import OUTBOX
from implementations.projector.positions import parse_token
from implementations.projector.source import Source
from implementations.projector.status import status_on

LAG_COLUMNS = {"ts": TS, "events_behind": "int64", "oldest_unapplied_age_ms": "float64"}
EVENT_LAG_COLUMNS = {"source_commit": TS, "applied_at": TS, "lag_ms": "float64"}
FRESHNESS_COLUMNS = {"operation": "str", "started_at": TS, "freshness_ms": "float64"}

# The oldest unapplied commit is taken over the first OLDEST_SCAN_LIMIT events after the
# checkpoint (Source.oldest_unapplied_age_ms), to stay cheap when far behind.
OLDEST_SCAN_LIMIT = 10_000


class LagSampler(Sampler):
    """Polls projection_status() of the run's write and read databases every `interval` s,
    reading events through `source` (the projection's; the outbox by default).

    Rows: ts (client clock, when the poll began), events_behind, oldest_unapplied_age_ms (server
    now() minus the commit time of the oldest committed, unapplied event; NaN when none is behind
    or commit times are not tracked). It polls on two persistent collector connections, one to
    each database, so it opens no connection per poll.
    """

    name = "lag"

    def __init__(
        self, write_dsn: str, read_dsn: str, interval: float = 0.5, *, source: Source = OUTBOX
    ) -> None:
        super().__init__(interval)
        self.write_dsn, self.read_dsn, self.source = write_dsn, read_dsn, source
        self._conn = self._read = None
        self._rows: list[tuple] = []

    def _open(self) -> None:
        self._conn = collector_connection(self.write_dsn)
        self._read = collector_connection(self.read_dsn)

    def _close(self) -> None:
        for conn in (self._conn, self._read):
            if conn is not None:
                conn.close()

    def _sample(self) -> None:
        ts = datetime.now(UTC)
        status = status_on(self._conn, self._read, source=self.source)
        age = math.nan
        if status.events_behind:
            after = parse_token(status.checkpoint)
            found = self.source.oldest_unapplied_age_ms(self._conn, after, OLDEST_SCAN_LIMIT)
            age = math.nan if found is None else found
        with self._lock:
            self._rows.append((ts, status.events_behind, age))

    def latest(self) -> str | None:
        """The last poll, for a progress line ("12 events, oldest 340 ms"); None before one."""
        with self._lock:
            if not self._rows:
                return None
            _ts, behind, age = self._rows[-1]
        return f"{behind} events" + ("" if math.isnan(age) else f", oldest {age:.0f} ms")

    def frame(self) -> pd.DataFrame:
        with self._lock:
            rows = list(self._rows)
        return typed_frame(pd.DataFrame(rows, columns=list(LAG_COLUMNS)), LAG_COLUMNS)


def read_batches(path: Path | str) -> list[dict]:
    """The projector's per-batch records from its JSONL file (blank lines skipped)."""
    with Path(path).open() as f:
        return [json.loads(line) for line in f if line.strip()]


def event_lag(batches: Iterable[Mapping]) -> pd.DataFrame:
    """The `event_lag` frame: one row per source commit with a known commit time, applied_at
    that of the last of its events (only then is the commit whole on the read side).

    A source transaction's events share its commit time and are applied one after another (the
    projector reads in commit order), possibly over consecutive batches: consecutive events with
    the same commit time are one commit. Counted per event, a commit of many events would weigh
    as many. Two transactions that committed in the same microsecond and were read one after the
    other count as one. Events whose commit time is null (commit timestamps not tracked, or too
    old) are skipped; their number (of events, not commits) is in `frame.attrs["null_commits"]`.
    """
    commits, applied, nulls, previous = [], [], 0, None
    for batch in batches:
        for commit in batch["source_commits"]:
            if commit is None:
                nulls += 1
            elif commit == previous:
                applied[-1] = batch["applied_at"]
            else:
                commits.append(commit)
                applied.append(batch["applied_at"])
            previous = commit
    frame = commit_lag(commits, applied)
    frame.attrs["null_commits"] = nulls
    return frame


def commit_lag(commits: Sequence[float], applied: Sequence[float]) -> pd.DataFrame:
    """The `event_lag` frame of the given commits: each one's commit time and the time it was
    applied, epoch s."""
    commits_s, applied_s = np.asarray(commits, "float64"), np.asarray(applied, "float64")
    return typed_frame(
        pd.DataFrame(
            {
                "source_commit": epoch_utc(commits),
                "applied_at": epoch_utc(applied),
                "lag_ms": (applied_s - commits_s) * 1000,
            }
        ),
        EVENT_LAG_COLUMNS,
    )


def _ns(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """Timestamps as int64 nanoseconds since the epoch, and where they are missing (NaT)."""
    stamps = pd.Series(pd.to_datetime(values, utc=True)).astype("datetime64[ns, UTC]")
    return stamps.to_numpy("int64", na_value=0), stamps.isna().to_numpy()


def freshness(events: pd.DataFrame, queries: pd.DataFrame) -> pd.DataFrame:
    """The `freshness` frame: for each query (in the order given), the staleness it saw.

    events: source_commit, applied_at (timestamps; e.g. event_lag()'s frame, a row per commit, or
    a row per event: the same figures, as a commit is pending until its last event is applied).
    queries: operation, started_at. A query started at t has freshness_ms = t - the oldest
    source_commit among rows with source_commit <= t < applied_at, and 0 when there is none: a
    row applied exactly at t counts as applied. Only recorded events count: events applied
    before the projector's first recorded batch (the history, and anything projected before
    recording began) are taken as applied, so queries from before recording began read 0 when
    they may have been stale. A query without a start time gets NaN.

    O((n + m) log n): events sorted by commit time with the running maximum of applied_at; for
    each query, the first event in commit order applied after t is found by binary search, and
    it is the oldest pending one if it committed at or before t.
    """
    commit, commit_na = _ns(events["source_commit"])
    applied, applied_na = _ns(events["applied_at"])
    keep = ~(commit_na | applied_na)
    commit, applied = commit[keep], applied[keep]
    order = np.argsort(commit, kind="stable")
    commit, applied = commit[order], applied[order]
    started, started_na = _ns(queries["started_at"])
    fresh = np.zeros(len(started), dtype="float64")
    if len(commit):
        applied_by = np.maximum.accumulate(applied)
        first = np.searchsorted(applied_by, started, side="right")
        pending = first < len(commit)
        oldest = commit[np.minimum(first, len(commit) - 1)]
        pending &= oldest <= started
        fresh = np.where(pending, (started - oldest) / 1e6, 0.0)
    fresh[started_na] = np.nan
    return typed_frame(
        pd.DataFrame(
            {
                "operation": queries["operation"].to_numpy(),
                "started_at": queries["started_at"].to_numpy(),
                "freshness_ms": fresh,
            }
        ),
        FRESHNESS_COLUMNS,
    )


REFRESH_COLUMNS = {
    "view": "str",
    "started_at": TS,
    "ended_at": TS,
    "duration_ms": "float64",
    "backend_cpu_ms": "float64",
}


def refreshes(records: Iterable[Mapping]) -> pd.DataFrame:
    """The refresher's records (view, started_at, ended_at in epoch s, backend_cpu_s) as a frame."""
    rows = list(records)
    started = np.asarray([r["started_at"] for r in rows], dtype="float64")
    ended = np.asarray([r["ended_at"] for r in rows], dtype="float64")
    cpu = [r["backend_cpu_s"] for r in rows]
    frame = pd.DataFrame(
        {
            "view": [r["view"] for r in rows],
            "started_at": epoch_utc(started),
            "ended_at": epoch_utc(ended),
            "duration_ms": (ended - started) * 1000,
            "backend_cpu_ms": np.asarray(
                [math.nan if c is None else c * 1000 for c in cpu], dtype="float64"
            ),
        }
    )
    return typed_frame(frame, REFRESH_COLUMNS)


def view_freshness(
    refreshed: pd.DataFrame, queries: pd.DataFrame, views: Mapping[str, str]
) -> pd.DataFrame:
    """The `freshness` frame of an architecture with a refresher: a query of operation `op`
    (reading the view `views[op]`) started at t has freshness_ms = t - started_at of the last
    refresh of that view whose ended_at <= t (a refresh that commits during the query is not
    counted, so the figure never understates the age). NaN when no refresh of its view had
    ended by t, or its operation reads no view."""
    started, started_na = _ns(queries["started_at"])
    fresh = np.full(len(started), np.nan)
    operations = queries["operation"].to_numpy()
    for view, of_view in refreshed.groupby("view"):
        ended, _ = _ns(of_view["ended_at"])
        began, _ = _ns(of_view["started_at"])
        order = np.argsort(ended, kind="stable")
        ended, began = ended[order], began[order]
        mine = np.array([views.get(op) == view for op in operations], dtype=bool) & ~started_na
        last = np.searchsorted(ended, started[mine], side="right") - 1
        fresh[mine] = np.where(
            last >= 0, (started[mine] - began[np.maximum(last, 0)]) / 1e6, np.nan
        )
    return typed_frame(
        pd.DataFrame(
            {
                "operation": operations,
                "started_at": queries["started_at"].to_numpy(),
                "freshness_ms": fresh,
            }
        ),
        FRESHNESS_COLUMNS,
    )
