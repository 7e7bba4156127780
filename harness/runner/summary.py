"""The table a run ends with: the evidence of `harness.analysis` for this run, in short."""

from __future__ import annotations

import math
from pathlib import Path

from harness.analysis.evidence import evidence
from harness.analysis.load import Run
from harness.results.run_dir import read_run_json

# evidence column -> (heading, format, width)
COLUMNS = {
    "impl": ("impl", "{}", 14),
    "checkout_rate_per_s": ("checkout/s", "{:.0f}", 10),
    "checkout_p50_ms": ("co p50 ms", "{:.1f}", 9),
    "checkout_p99_ms": ("co p99 ms", "{:.1f}", 9),
    "peak_dashboard_rate_per_s": ("dash/s", "{:.1f}", 7),
    "dashboard_p99_ms": ("dash p99 ms", "{:.1f}", 11),
    "errors": ("errors", "{:.0f}", 6),
    "lock_wait_s": ("lock wait s", "{:.2f}", 11),
    "lag_p99_ms": ("lag p99 ms", "{:.1f}", 10),
    "freshness_p95_ms": ("fresh p95 ms", "{:.1f}", 12),
    "ryw_p99_ms": ("ryw p99 ms", "{:.1f}", 10),
    "cores": ("cpu cores", "{:.2f}", 9),
    "storage_mb": ("storage MB", "{:.0f}", 10),
}
NOTES = ("co = checkout, dash = dashboard queries (all three; the rate at the most analysts), over "
         "the measurement window; lock wait s = session-seconds waiting on a Lock (sampled); lag = "
         "per-event time lag; fresh = freshness seen by dashboard queries; ryw = read-your-writes "
         "visibility (probe); cpu cores = servers, service and projector; storage = the run's "
         "databases")  # fmt: skip


def summary_table(run_dir: Path) -> str:
    """Fixed-width text, one line per architecture (`-` where a figure does not apply)."""
    try:  # the tables were just written: not validated again (summary.txt is not there yet)
        table = evidence([Run(run_dir.resolve(), read_run_json(run_dir))])
    except (ValueError, KeyError, OSError) as exc:
        return f"(no summary: {exc})"
    lines = ["  ".join(f"{heading:>{width}}" for heading, _, width in COLUMNS.values())]
    for _, row in table.iterrows():
        cells = []
        for column, (_, fmt, width) in COLUMNS.items():
            value = row[column]
            missing = isinstance(value, float) and math.isnan(value)
            cells.append(f"{'-' if missing else fmt.format(value):>{width}}")
        lines.append("  ".join(cells))
    return "\n".join([*lines, NOTES])
