"""The table a run ends with: the architectures side by side over the measurement window."""

from __future__ import annotations

import math

import pandas as pd
from hdrh.histogram import HdrHistogram

from harness.runner.latency import new_histogram

ACTIVITY_HZ = 10  # samples per second of the activity sampler: a Lock sample is 0.1 session-s
COLUMNS = (
    ("impl", "{}", 14), ("checkout/s", "{:.0f}", 10), ("co p50 ms", "{:.1f}", 9),
    ("co p99 ms", "{:.1f}", 9), ("dash/s", "{:.1f}", 7), ("dash p99 ms", "{:.1f}", 11),
    ("errors", "{:.0f}", 6), ("lock wait s", "{:.2f}", 11), ("lag p99 ms", "{:.1f}", 10),
    ("fresh p95 ms", "{:.1f}", 12), ("ryw p99 ms", "{:.1f}", 10), ("cpu s", "{:.0f}", 6),
)  # fmt: skip


def _merged_p99(rows: pd.DataFrame) -> float:
    hist = new_histogram()
    for encoded in rows["hdr"]:
        if encoded:
            hist.add(HdrHistogram.decode(encoded))
    return hist.get_value_at_percentile(99) / 1000 if hist.get_total_count() else math.nan


def _in_window(frame: pd.DataFrame, column: str, window) -> pd.DataFrame:
    if window is None or frame.empty:
        return frame
    start = pd.Timestamp(window.measure_start, unit="s", tz="UTC")
    end = pd.Timestamp(window.measure_end, unit="s", tz="UTC")
    return frame[(frame[column] >= start) & (frame[column] < end)]


def impl_figures(impl: str, tables: dict[str, pd.DataFrame], window) -> dict[str, float]:
    def of(name: str) -> pd.DataFrame:
        frame = tables[name]
        return frame[frame["impl"] == impl]

    summary = of("latency_summary")
    checkout = summary[(summary["operation"] == "checkout") & (summary["kind"] == "service")]
    ryw = summary[summary["kind"] == "visibility"]
    measured = of("latency")
    measured = measured[(measured["phase"] == "measure") & (measured["kind"] == "service")]
    dashboard = measured[measured["operation"].str.startswith("dashboard_")]
    seconds = window.duration if window else math.nan
    waits = _in_window(of("waits"), "ts", window)
    resources = of("resources")
    cpu = (resources.groupby("component")[["cpu_user_s", "cpu_system_s"]].agg(lambda s: s.max() - s.min())
           .sum().sum() if len(resources) else math.nan)  # fmt: skip
    event_lag, freshness = of("event_lag"), _in_window(of("freshness"), "started_at", window)
    return {
        "impl": impl,
        "checkout/s": checkout["rate_per_s"].sum() if len(checkout) else math.nan,
        "co p50 ms": checkout["p50_ms"].iloc[0] if len(checkout) else math.nan,
        "co p99 ms": checkout["p99_ms"].iloc[0] if len(checkout) else math.nan,
        "dash/s": dashboard["count"].sum() / seconds if len(dashboard) else math.nan,
        "dash p99 ms": _merged_p99(dashboard) if len(dashboard) else math.nan,
        "errors": measured["errors"].sum(),
        "lock wait s": (waits["wait_event_type"] == "Lock").sum() / ACTIVITY_HZ if len(waits) else math.nan,
        "lag p99 ms": event_lag["lag_ms"].quantile(0.99) if len(event_lag) else math.nan,
        "fresh p95 ms": freshness["freshness_ms"].quantile(0.95) if len(freshness) else math.nan,
        "ryw p99 ms": ryw["p99_ms"].iloc[0] if len(ryw) else math.nan,
        "cpu s": cpu,
    }  # fmt: skip


def summary_table(impls: list[str], tables: dict[str, pd.DataFrame], windows: dict) -> str:
    """Fixed-width text: one line per architecture ('-' where a figure does not apply)."""
    lines = ["  ".join(f"{name:>{width}}" for name, _, width in COLUMNS)]
    for impl in impls:
        row = impl_figures(impl, tables, windows.get(impl))
        cells = []
        for name, fmt, width in COLUMNS:
            value = row[name]
            text = "-" if isinstance(value, float) and math.isnan(value) else fmt.format(value)
            cells.append(f"{text:>{width}}")
        lines.append("  ".join(cells))
    notes = ("co = checkout, dash = dashboard queries (all three), measured after the warm-up; "
             "lock wait s = Lock wait samples x 0.1 s; lag = per-event time lag; fresh = "
             "freshness seen by dashboard queries; ryw = read-your-writes visibility (probe)")  # fmt: skip
    return "\n".join(lines + [notes])
