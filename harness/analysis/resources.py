"""CPU and memory per component from resources.parquet (cumulative CPU seconds at about 1 Hz).

CPU over the measure phase is the growth of the cumulative counters between the first and last
sample inside it, and `cores` that growth divided by the time between those samples (the average
number of cores the component kept busy). The system under test is every component but
OUTSIDE: the report's table and its CPU chart both total those. The `machine` rows (the whole
machine's busy CPU, whatever ran on it) are no component of the run: they are left out here,
and read by harness/analysis/bottlenecks.py.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.analysis.compare import mean_interval
from harness.analysis.load import in_measure
from harness.collectors.resources import MACHINE  # the whole machine: no component

OUTSIDE = ("locust", "runner")  # the load generator and the harness: not the system under test
RESAMPLES = 1000


def _measured(resources: pd.DataFrame, windows: pd.DataFrame) -> pd.DataFrame:
    frame = in_measure(resources[resources["component"] != MACHINE], "ts", windows)
    return frame.assign(total=frame["cpu_user_s"] + frame["cpu_system_s"]).sort_values("ts")


def cpu(resources: pd.DataFrame, windows: pd.DataFrame) -> pd.DataFrame:
    """Per run, implementation and component: `cpu_s`, `cores` and peak `rss_mb`."""
    keys = ["run", "impl", "component"]
    frame = _measured(resources, windows)
    if frame.empty:
        return pd.DataFrame(columns=[*keys, "cpu_s", "cores", "rss_mb"])
    grouped = frame.groupby(keys)
    span = (grouped["ts"].max() - grouped["ts"].min()).dt.total_seconds()
    used = grouped["total"].max() - grouped["total"].min()
    table = pd.DataFrame(
        {
            "cpu_s": used,
            "cores": used / span.where(span > 0),
            "rss_mb": grouped["rss_bytes"].max() / 2**20,
        }
    )
    return table.reset_index()


def _cores_bounds(increments: pd.Series, resamples: int, seed: int) -> pd.Series:
    """95% interval of the mean CPU seconds per second over the seconds of `increments`."""
    low, high = mean_interval(increments.to_numpy(dtype=float), resamples, seed)
    return pd.Series({"cores_lo": low, "cores_hi": high})


def cpu_per_second(resources: pd.DataFrame, windows: pd.DataFrame) -> pd.Series:
    """CPU seconds the system under test (OUTSIDE left out) used in each second of the measure
    phase, indexed by run, implementation and second (each sample's growth counted in the
    second it was taken)."""
    keys = ["run", "impl"]
    frame = _measured(resources, windows)
    frame = frame[~frame["component"].isin(OUTSIDE)]
    if frame.empty:
        return pd.Series(dtype=float, name="grown")
    grown = frame.assign(
        grown=frame.groupby([*keys, "component"])["total"].diff(), second=frame["ts"].dt.floor("s")
    ).dropna(subset=["grown"])
    return grown.groupby([*keys, "second"])["grown"].sum()


def cpu_total(
    resources: pd.DataFrame, windows: pd.DataFrame, resamples: int = RESAMPLES, seed: int = 0
) -> pd.DataFrame:
    """Per run and implementation: `cpu_s` and `cores` summed over the components of the system
    under test (OUTSIDE left out), and `cores_lo`/`cores_hi`, a 95% interval of `cores`: the
    bootstrap over the seconds of the measure phase of `cpu_per_second`."""
    keys = ["run", "impl"]
    table = cpu(resources, windows)
    table = table[~table["component"].isin(OUTSIDE)]
    totals = table.groupby(keys, as_index=False)[["cpu_s", "cores"]].sum()
    per_second = cpu_per_second(resources, windows)
    if per_second.empty:
        return totals.assign(cores_lo=np.nan, cores_hi=np.nan)
    bounds = per_second.groupby(keys).apply(_cores_bounds, resamples, seed).unstack()
    return totals.merge(bounds.reset_index(), on=keys, how="left")
