"""Lag and freshness of the architectures whose answers lag (a projection, a standby, refreshed
views; DESIGN section 6).

- time lag per source commit: apply commit time of its last event minus its commit time
  (event_lag.parquet);
- freshness seen by a dashboard query: its start minus the commit time of the oldest committed,
  unapplied event, 0 when none (HATtrick's definition; freshness.parquet);
- the backlog over time (lag.parquet).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

QUANTILES = {"p50_ms": 0.50, "p95_ms": 0.95, "p99_ms": 0.99}


def event_lag_ms(event_lag: pd.DataFrame) -> pd.Series:
    """Each source commit's time lag from its row's timestamps, ms (applied_at − source_commit)."""
    return (event_lag["applied_at"] - event_lag["source_commit"]).dt.total_seconds() * 1000


def _stats(frame: pd.DataFrame, value: str, by: list[str]) -> pd.DataFrame:
    columns = [*by, "count", *QUANTILES, "max_ms"]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    grouped = frame.groupby(by)[value]
    table = grouped.count().rename("count").to_frame()
    for name, q in QUANTILES.items():
        table[name] = grouped.quantile(q)
    table["max_ms"] = grouped.max()
    return table.reset_index()[columns]


def event_lag_stats(event_lag: pd.DataFrame, by: list[str] | None = None) -> pd.DataFrame:
    """Per run and implementation: commits applied, lag p50/p95/p99 and max (ms)."""
    frame = event_lag.assign(lag=event_lag_ms(event_lag)) if len(event_lag) else event_lag
    return _stats(frame, "lag", by or ["run", "impl"])


def freshness_stats(freshness: pd.DataFrame, by: list[str] | None = None) -> pd.DataFrame:
    """Per run and implementation: queries, freshness p50/p95/p99 and max (ms), and
    `stale_share`, the share of queries that saw an unapplied event (freshness > 0)."""
    by = by or ["run", "impl"]
    table = _stats(freshness, "freshness_ms", by)
    if len(freshness):
        stale = freshness.groupby(by)["freshness_ms"].apply(lambda s: float((s > 0).mean()))
        table = table.merge(stale.rename("stale_share").reset_index(), on=by)
    else:
        table["stale_share"] = pd.Series(dtype=float)
    return table


def freshness_at(query_starts: pd.Series, event_lag: pd.DataFrame) -> pd.Series:
    """Freshness (ms) a query starting at each time would see, from the events' timestamps:
    start minus the oldest source commit that had committed but was not yet applied; 0 if none.
    (A check of freshness.parquet from event_lag.parquet; O(queries × events).)"""
    order = event_lag.sort_values("source_commit")
    source = order["source_commit"].to_numpy()
    applied = order["applied_at"].to_numpy()
    out = []
    for start in query_starts.to_numpy():
        committed = int(np.searchsorted(source, start, side="right"))
        pending = np.flatnonzero(applied[:committed] > start)
        oldest = source[pending[0]] if len(pending) else start
        out.append((start - oldest) / np.timedelta64(1, "ms"))
    return pd.Series(out, index=query_starts.index, dtype=float)


def cdf(frame: pd.DataFrame, value: str, by: list[str] | None = None) -> pd.DataFrame:
    """Empirical CDF per group: `value` sorted and `fraction` of samples ≤ it."""
    by = by or ["run", "impl"]
    parts = []
    for key, group in frame.groupby(by):
        values = np.sort(group[value].to_numpy(dtype=float))
        parts.append(
            pd.DataFrame(
                {
                    **dict(zip(by, key, strict=True)),
                    value: values,
                    "fraction": np.arange(1, len(values) + 1) / len(values),
                }
            )
        )
    return (
        pd.concat(parts, ignore_index=True)
        if parts
        else pd.DataFrame(columns=[*by, value, "fraction"])
    )
