"""Lock contention from the active-session samples (waits.parquet, about 10 Hz) and the servers'
logs (lock_waits.parquet) and counters (db_stats.parquet).

A session seen waiting on a `Lock` in one sample stands for 1 / ACTIVITY_HZ seconds of lock wait,
so lock-wait seconds = Lock samples / ACTIVITY_HZ (the same estimate as the run's summary).
"""

from __future__ import annotations

import pandas as pd

from harness.analysis.load import in_measure, load_start
from harness.collectors.activity import HZ as ACTIVITY_HZ

CPU = "CPU"  # wait_event_type "" means on CPU


def waits_over_time(waits: pd.DataFrame, latency: pd.DataFrame, bin_s: float = 1.0) -> pd.DataFrame:
    """Average sessions per wait type, per run, implementation, server and bin of elapsed time
    (from the start of the load, as in latency.parquet): `elapsed_s`, `wait_event_type`,
    `sessions`. Idle sessions (waiting for their client) are left out."""
    columns = ["run", "impl", "server", "elapsed_s", "wait_event_type", "sessions"]
    active = waits[waits["state"] != "idle"]
    if active.empty:
        return pd.DataFrame(columns=columns)
    frame = active.merge(load_start(latency), on=["run", "impl"])
    elapsed = (frame["ts"] - frame["load_start"]).dt.total_seconds()
    frame = frame.assign(
        elapsed_s=(elapsed // bin_s) * bin_s,
        wait_event_type=frame["wait_event_type"].replace("", CPU),
    )
    samples_per_bin = ACTIVITY_HZ * bin_s
    counts = frame.groupby(columns[:-1]).size().rename("sessions") / samples_per_bin
    return counts.reset_index()[columns]


def _measured_locks(waits: pd.DataFrame, windows: pd.DataFrame) -> pd.DataFrame:
    """The measure phase's samples, flagged: `lock` (waiting on a Lock), `blocked` (others were
    blocking the session)."""
    frame = in_measure(waits, "ts", windows)
    return frame.assign(lock=frame["wait_event_type"] == "Lock", blocked=frame["blocked_by"] > 0)


def _session_seconds(samples: pd.Series) -> pd.Series:
    """Session-seconds of `samples` samples (one stands for 1 / ACTIVITY_HZ seconds)."""
    return samples / ACTIVITY_HZ


def lock_wait_seconds(waits: pd.DataFrame, windows: pd.DataFrame) -> pd.DataFrame:
    """Per run, implementation and server, over the measure phase: `lock_wait_s` (Lock samples
    / ACTIVITY_HZ) and `blocked_samples` (samples of a session that others were blocking)."""
    frame = _measured_locks(waits, windows)
    keys = ["run", "impl", "server"]
    if frame.empty:
        return pd.DataFrame(columns=[*keys, "lock_wait_s", "blocked_samples"])
    table = frame.groupby(keys).agg(lock_wait_s=("lock", "sum"), blocked_samples=("blocked", "sum"))
    table["lock_wait_s"] = _session_seconds(table["lock_wait_s"])
    return table.reset_index()


def lock_wait_by_blocker(waits: pd.DataFrame, windows: pd.DataFrame) -> pd.DataFrame:
    """Who waited on whom over the measure phase: per run, implementation, waiting `component`
    and `blocker_component` (its blockers' components; `""`: none left to name), the Lock
    `samples` and `lock_wait_s` (session-seconds, as lock_wait_seconds), most first."""
    keys = ["run", "impl", "component", "blocker_component"]
    frame = _measured_locks(waits, windows)
    frame = frame[frame["lock"]]
    if frame.empty:
        return pd.DataFrame(columns=[*keys, "samples", "lock_wait_s"])
    table = frame.groupby(keys).size().rename("samples").reset_index()
    table["lock_wait_s"] = _session_seconds(table["samples"])
    return table.sort_values(
        ["run", "impl", "samples"], ascending=[True, True, False], kind="stable", ignore_index=True
    )


def log_events(lock_waits: pd.DataFrame) -> pd.DataFrame:
    """Per run, implementation, server and event: how many lines the server logged."""
    keys = ["run", "impl", "server", "event"]
    if lock_waits.empty:
        return pd.DataFrame(columns=[*keys, "count"])
    return lock_waits.groupby(keys).size().rename("count").reset_index()


def counters(
    db_stats: pd.DataFrame, stats: tuple[str, ...] = ("deadlocks", "xact_rollback", "xact_commit")
) -> pd.DataFrame:
    """Per run and implementation, the measure-phase delta of each counter in `stats`, summed
    over servers and databases (one column per counter)."""
    frame = db_stats[db_stats["stat"].isin(stats)]
    if frame.empty:
        return pd.DataFrame(columns=["run", "impl", *stats])
    wide = frame.pivot_table(index=["run", "impl"], columns="stat", values="delta", aggfunc="sum")
    return wide.reindex(columns=list(stats)).reset_index()
