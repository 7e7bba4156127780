"""Latency tables from the Locust processes' per-second HDR histograms (exact merges, no averaging
of percentiles): one row per second, operation and kind; the errors by type; and the
measurement window's summary per operation."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np
import pandas as pd
from hdrh.histogram import HdrHistogram

from workloads.recorder import new_histogram  # the one layout every recorded histogram has

PERCENTILES = {"p50_ms": 50, "p90_ms": 90, "p95_ms": 95, "p99_ms": 99, "p999_ms": 99.9}


@dataclass(frozen=True)
class Window:
    """The load's clock: warm-up from `start`, measurement from `start + warmup` for `duration`."""

    start: float  # epoch second of the first request
    warmup: float
    duration: float

    @property
    def measure_start(self) -> float:
        return self.start + self.warmup

    @property
    def measure_end(self) -> float:
        return self.measure_start + self.duration

    def phase(self, second: float) -> str:
        if second < self.measure_start:
            return "warmup"
        return "measure" if second < self.measure_end else "cooldown"


def figures(hist: HdrHistogram, count: int) -> dict[str, float]:
    """Percentiles, max and mean in milliseconds (NaN without a successful request), by
    HdrHistogram's own rules, read in one pass over the buckets in use (numpy: calling
    `get_value_at_percentile` per percentile walks every bucket in Python, about 0.2 s a
    histogram)."""
    if count == 0 or hist.get_total_count() == 0:
        return {
            **{k: float("nan") for k in PERCENTILES},
            "max_ms": float("nan"),
            "mean_ms": float("nan"),
        }
    counts = np.ctypeslib.as_array(hist.counts)[: hist.counts_len]
    used = np.flatnonzero(counts)
    cumulative = np.cumsum(counts[used].astype(np.int64))
    total = int(cumulative[-1])
    lowest = [hist.get_value_from_index(int(i)) for i in used]
    highest = np.array([hist.get_highest_equivalent_value(v) for v in lowest], dtype=np.float64)
    middle = np.array([hist._hdr_median_equiv_value(v) for v in lowest], dtype=np.float64)
    out = {}
    for key, percentile in PERCENTILES.items():
        target = max(int(min(percentile, 100.0) * total / 100 + 0.5), 1)
        out[key] = float(highest[int(np.searchsorted(cumulative, target))]) / 1000
    out["max_ms"] = float(highest[-1]) / 1000
    out["mean_ms"] = float(counts[used] @ middle) / total / 1000
    return out


def _ts(second: float) -> pd.Timestamp:
    return pd.Timestamp(second, unit="s", tz="UTC")


USERS_COLUMNS = ["second", "elapsed_s", "phase", "user_class", "users"]


def users_table(users: Mapping[int, Mapping[str, int]], window: Window) -> pd.DataFrame:
    """One row per second and user class: how many of the class's users were acting."""
    rows = [
        {
            "second": _ts(second),
            "elapsed_s": float(second - window.start),
            "phase": window.phase(second),
            "user_class": name,
            "users": int(n),
        }
        for second, counts in sorted(users.items())
        for name, n in sorted(counts.items())
    ]
    return pd.DataFrame(rows, columns=USERS_COLUMNS)


def tables(
    merged: Iterable[tuple], window: Window, users: Mapping[int, Mapping[str, int]] | None = None
) -> dict[str, pd.DataFrame]:
    """`merged`: (second, operation, kind, count, errors by type, HdrHistogram) per second, as
    `workloads.recorder.merge_seconds` gives them; `users`: second -> users per class (default:
    `merged.users`, merge_seconds' own; retries: `merged.retries`). Returns latency, errors,
    latency_summary and users."""
    rows, error_rows, totals = [], [], {}
    retried = getattr(merged, "retries", {})
    for second, operation, kind, count, errors, hist in merged:
        phase = window.phase(second)
        retries = int(retried.get((second, operation, kind), 0))
        rows.append(
            {
                "second": _ts(second),
                "elapsed_s": float(second - window.start),
                "phase": phase,
                "operation": operation,
                "kind": kind,
                "count": int(count),
                "errors": int(sum(errors.values())),
                "retries": retries,
                **figures(hist, count),
                "hdr": hist.encode().decode() if count else "",
            }
        )
        error_rows += [
            {
                "second": _ts(second),
                "phase": phase,
                "operation": operation,
                "kind": kind,
                "error": error,
                "count": int(n),
            }
            for error, n in errors.items()
        ]
        if phase == "measure":
            total = totals.setdefault((operation, kind), [new_histogram(), 0, 0, 0])
            total[0].add(hist)
            total[1] += count
            total[2] += sum(errors.values())
            total[3] += retries
    summary = [
        {
            "operation": op,
            "kind": kind,
            "count": int(count),
            "errors": int(errors),
            "retries": int(retries),
            "seconds": float(window.duration),
            "rate_per_s": count / window.duration,
            **figures(hist, count),
        }
        for (op, kind), (hist, count, errors, retries) in sorted(totals.items())
    ]
    users = getattr(merged, "users", {}) if users is None else users
    return {
        "latency": pd.DataFrame(rows),
        "errors": pd.DataFrame(error_rows),
        "latency_summary": pd.DataFrame(summary),
        "users": users_table(users, window),
    }
