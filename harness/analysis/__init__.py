"""Analysis of run directories: tidy tables, charts, the report and run comparison.

Start with `Loaded(load_runs(...))`, then `evidence`, `write_report` or `compare_runs`.
"""

from harness.analysis.compare import compare_runs, config_changes, format_comparison
from harness.analysis.evidence import evidence
from harness.analysis.interference import curve as interference_curve
from harness.analysis.load import Loaded, Run, load_run, load_runs, measure_windows, read
from harness.analysis.report import (
    contention_charts,
    cpu_charts,
    decision_record,
    horizon_charts,
    interference_charts,
    lag_charts,
    latency_charts,
    server_time_charts,
    write_report,
)

__all__ = [
    "Loaded",
    "Run",
    "compare_runs",
    "config_changes",
    "contention_charts",
    "cpu_charts",
    "decision_record",
    "evidence",
    "format_comparison",
    "horizon_charts",
    "interference_charts",
    "interference_curve",
    "lag_charts",
    "latency_charts",
    "load_run",
    "load_runs",
    "measure_windows",
    "read",
    "server_time_charts",
    "write_report",
]
