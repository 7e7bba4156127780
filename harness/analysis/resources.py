"""CPU and memory per component from resources.parquet (cumulative CPU seconds at about 1 Hz).

CPU over the measure phase is the growth of the cumulative counters between the first and last
sample inside it, and `cores` that growth divided by the time between those samples (the average
number of cores the component kept busy).
"""

from __future__ import annotations

import pandas as pd

from harness.analysis.load import in_measure


def cpu(resources: pd.DataFrame, windows: pd.DataFrame) -> pd.DataFrame:
    """Per run, implementation and component: `cpu_s`, `cores` and peak `rss_mb`."""
    keys = ["run", "impl", "component"]
    frame = in_measure(resources, "ts", windows)
    if frame.empty:
        return pd.DataFrame(columns=[*keys, "cpu_s", "cores", "rss_mb"])
    frame = frame.assign(total=frame["cpu_user_s"] + frame["cpu_system_s"]).sort_values("ts")
    grouped = frame.groupby(keys)
    span = (grouped["ts"].max() - grouped["ts"].min()).dt.total_seconds()
    used = grouped["total"].max() - grouped["total"].min()
    table = pd.DataFrame({"cpu_s": used, "cores": used / span.where(span > 0),
                          "rss_mb": grouped["rss_bytes"].max() / 2**20})  # fmt: skip
    return table.reset_index()


def cpu_total(resources: pd.DataFrame, windows: pd.DataFrame) -> pd.DataFrame:
    """Per run and implementation: `cores` summed over components (Locust and the runner, the
    load generator and the harness, left out: they are not part of the system under test)."""
    table = cpu(resources, windows)
    table = table[~table["component"].isin(["locust", "runner"])]
    return table.groupby(["run", "impl"], as_index=False)[["cpu_s", "cores"]].sum()
