"""How many analysts ran in each second, and what checkout looked like at each number of them.

The count comes from the run's shape and mix (run.json `config.shape`, `config.mix`, the files in
workloads/), evaluated the way Locust's load shape does: `elapsed` seconds into a run lasting
warm-up + measure seconds. A steady run gives one point per architecture; a step shape or a
sweep of runs gives a curve.
"""

from __future__ import annotations

import math

import pandas as pd

from harness.analysis.latency import DASHBOARD, headline_kind, measured, percentiles, with_dashboard
from harness.analysis.load import Run, read
from workloads.spec import load_mix, load_shape

ANALYST = "Analyst"


def analysts_at(run: Run, elapsed_s: pd.Series) -> pd.Series:
    """Analysts the shape wanted at each elapsed second (its middle); NaN when the run's shape
    or mix cannot be read (a file that has since gone)."""
    try:
        mix, shape = load_mix(run.config["mix"]), load_shape(run.config["shape"])
    except (KeyError, ValueError):
        return pd.Series(math.nan, index=elapsed_s.index)
    total = run.warmup_s + run.duration_s
    return elapsed_s.map(lambda s: float(shape.target(mix, ANALYST, s + 0.5, total)))


def with_analysts(runs: list[Run], latency: pd.DataFrame | None = None) -> pd.DataFrame:
    """latency.parquet of `runs` (or `latency`) with an `analysts` column."""
    latency = read(runs, "latency") if latency is None else latency
    parts = []
    for run in runs:
        rows = latency[latency["run"] == run.label]
        parts.append(rows.assign(analysts=analysts_at(run, rows["elapsed_s"])))
    return pd.concat(parts, ignore_index=True)


def curve(runs: list[Run], latency: pd.DataFrame | None = None) -> pd.DataFrame:
    """Per run, implementation and number of analysts, over the measure phase: `seconds`,
    checkout rate, p50 and p99, and the dashboard rate and p99. Latency is the run's headline
    kind (intended in open loop, else service)."""
    frame = with_dashboard(measured(with_analysts(runs, latency)))
    frame = frame[frame["kind"] == headline_kind(frame)]
    keys = ["run", "impl", "analysts"]
    table = percentiles(frame[frame["operation"].isin(["checkout", DASHBOARD])],
                        by=[*keys, "operation"])  # fmt: skip
    wide = table.pivot_table(index=[*keys, "seconds"], columns="operation",
                             values=["rate_per_s", "p50_ms", "p99_ms"])  # fmt: skip
    wide.columns = [f"{op}_{name}" for name, op in wide.columns]
    out = wide.reset_index()
    for column in ("checkout_rate_per_s", "checkout_p50_ms", "checkout_p99_ms",
                   "dashboard_rate_per_s", "dashboard_p99_ms"):  # fmt: skip
        if column not in out:
            out[column] = 0.0 if column.endswith("rate_per_s") else math.nan
    out["dashboard_rate_per_s"] = out["dashboard_rate_per_s"].fillna(0.0)
    return out[[*keys, "seconds", "checkout_rate_per_s", "checkout_p50_ms", "checkout_p99_ms",
                "dashboard_rate_per_s", "dashboard_p99_ms"]]  # fmt: skip
