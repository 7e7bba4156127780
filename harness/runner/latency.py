"""Latency tables from the Locust processes' per-second HDR histograms (exact merges, no averaging
of percentiles): one row per second, operation and kind; the errors by type; and the
measurement window's summary per operation."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

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
    """Percentiles, max and mean in milliseconds (NaN without a successful request)."""
    if count == 0:
        return {**{k: float("nan") for k in PERCENTILES}, "max_ms": float("nan"),
                "mean_ms": float("nan")}  # fmt: skip
    return {
        **{k: hist.get_value_at_percentile(p) / 1000 for k, p in PERCENTILES.items()},
        "max_ms": hist.get_max_value() / 1000,
        "mean_ms": hist.get_mean_value() / 1000,
    }


def _ts(second: float) -> pd.Timestamp:
    return pd.Timestamp(second, unit="s", tz="UTC")


def tables(merged: Iterable[tuple], window: Window) -> dict[str, pd.DataFrame]:
    """`merged`: (second, operation, kind, count, errors by type, HdrHistogram) per second, as
    `workloads.recorder.merge_seconds` gives them. Returns latency, errors, latency_summary."""
    rows, error_rows, totals = [], [], {}
    for second, operation, kind, count, errors, hist in merged:
        phase = window.phase(second)
        rows.append({
            "second": _ts(second), "elapsed_s": float(second - window.start), "phase": phase,
            "operation": operation, "kind": kind, "count": int(count),
            "errors": int(sum(errors.values())), **figures(hist, count),
            "hdr": hist.encode().decode() if count else "",
        })  # fmt: skip
        error_rows += [{"second": _ts(second), "phase": phase, "operation": operation,
                        "kind": kind, "error": error, "count": int(n)}
                       for error, n in errors.items()]  # fmt: skip
        if phase == "measure":
            total = totals.setdefault((operation, kind), [new_histogram(), 0, 0])
            total[0].add(hist)
            total[1] += count
            total[2] += sum(errors.values())
    summary = [{
        "operation": op, "kind": kind, "count": int(count), "errors": int(errors),
        "seconds": float(window.duration), "rate_per_s": count / window.duration,
        **figures(hist, count),
    } for (op, kind), (hist, count, errors) in sorted(totals.items())]  # fmt: skip
    return {"latency": pd.DataFrame(rows), "errors": pd.DataFrame(error_rows),
            "latency_summary": pd.DataFrame(summary)}  # fmt: skip
