"""How many analysts ran in each second, and what checkout looked like at each number of them.

The count is what Locust ran: the run's `users` table (per second and user class, from the Locust
processes' own counts), never the shape file, which may have changed since. A run made before
that table existed (results schema version 1) has no count: its seconds are left out of the
curve. A steady run gives one point per architecture; a step shape or a sweep of runs gives a
curve.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd

from harness.analysis.compare import latency_sampler, mean_interval
from harness.analysis.latency import DASHBOARD, headline_kind, measured, percentiles, with_dashboard
from harness.analysis.load import Loaded, once

ANALYST = "Analyst"
RESAMPLES = 1000  # bootstrap draws behind every interval


def analysts_by_second(users: pd.DataFrame) -> pd.DataFrame:
    """Per run, implementation and `second` the users table recorded: `analysts` running in it
    (0 when no Analyst row)."""
    keys = ["run", "impl", "second"]
    recorded = users[keys].drop_duplicates()
    analysts = users[users["user_class"] == ANALYST][[*keys, "users"]]
    known = recorded.merge(analysts, on=keys, how="left").fillna({"users": 0})
    return known.rename(columns={"users": "analysts"}).astype({"analysts": float})


@once
def with_analysts(data: Loaded) -> pd.DataFrame:
    """latency.parquet of the runs with an `analysts` column: the analysts running in each row's
    second, from the users table (0 in a recorded second without analysts; NaN in a second the
    table does not hold)."""
    latency = data.table("latency")
    keys = ["run", "impl", "second"]
    found = latency[keys].merge(analysts_by_second(data.table("users")), on=keys, how="left")
    return latency.assign(analysts=found["analysts"].astype(float).to_numpy())


@once
def measured_by_analysts(data: Loaded) -> pd.DataFrame:
    """The measured latency rows of the runs in the headline kind (intended in open loop, else
    service), each with the number of analysts running in its second (seconds without a count
    left out)."""
    frame = measured(with_analysts(data))
    return frame[(frame["kind"] == headline_kind(frame)) & frame["analysts"].notna()]


def percentile_bounds(
    rows: pd.DataFrame, percentile: float, resamples: int = RESAMPLES, seed: int = 0
) -> tuple[float, float]:
    """95% interval of `percentile` (ms) of latency rows of one run and implementation: the 2.5
    and 97.5 percentiles of the figure over `resamples` draws of its seconds with replacement
    (the block bootstrap of harness.analysis.compare); NaN when there is no call."""
    if rows["count"].sum() == 0:
        return math.nan, math.nan
    draws = latency_sampler(rows, percentile, 1.0, 0.0).draws(
        np.random.default_rng(seed), resamples
    )
    low, high = np.nanpercentile(draws, [2.5, 97.5])
    return float(low), float(high)


def rate_bounds(
    rows: pd.DataFrame, seconds: np.ndarray, resamples: int = RESAMPLES, seed: int = 0
) -> tuple[float, float]:
    """95% interval of the calls per second of latency rows over `seconds` (a second without a
    call counts 0), by the same bootstrap of seconds as `percentile_bounds`."""
    counts = rows.groupby("second")["count"].sum().reindex(seconds, fill_value=0).to_numpy()
    return mean_interval(counts, resamples, seed)


BOUNDS = [
    f"{column}_{bound}"
    for column in ("checkout_p99_ms", "checkout_rate_per_s", "dashboard_rate_per_s")
    for bound in ("lo", "hi")
]


def _bounds(group: pd.DataFrame) -> pd.Series:
    """The intervals of one point of the curve (see `curve`)."""
    seconds = np.sort(group["second"].unique())
    checkout = group[group["operation"] == "checkout"]
    dashboard = group[group["operation"] == DASHBOARD]
    return pd.Series(
        dict(
            zip(
                BOUNDS,
                (
                    *percentile_bounds(checkout, 99),
                    *rate_bounds(checkout, seconds),
                    *rate_bounds(dashboard, seconds),
                ),
                strict=True,
            )
        )
    )


@once
def curve(data: Loaded) -> pd.DataFrame:
    """Per run, implementation and number of analysts, over the measure phase: `seconds`,
    checkout rate, p50 and p99, and the dashboard rate and p99. Latency is the run's headline
    kind (intended in open loop, else service). `<column>_lo`/`<column>_hi` are the 95%
    bootstrap intervals of checkout p99 and of both rates (`percentile_bounds`, `rate_bounds`)."""
    frame = with_dashboard(measured_by_analysts(data))
    keys = ["run", "impl", "analysts"]
    frame = frame[frame["operation"].isin(["checkout", DASHBOARD])]
    table = percentiles(frame, by=[*keys, "operation"])
    wide = table.pivot_table(
        index=[*keys, "seconds"], columns="operation", values=["rate_per_s", "p50_ms", "p99_ms"]
    )
    wide.columns = [f"{op}_{name}" for name, op in wide.columns]
    out = wide.reset_index()
    for column in (
        "checkout_rate_per_s",
        "checkout_p50_ms",
        "checkout_p99_ms",
        "dashboard_rate_per_s",
        "dashboard_p99_ms",
    ):
        if column not in out:
            out[column] = 0.0 if column.endswith("rate_per_s") else math.nan
    out["dashboard_rate_per_s"] = out["dashboard_rate_per_s"].fillna(0.0)
    bounds = (
        frame.groupby(keys)[frame.columns].apply(_bounds).reset_index()
        if len(out)
        else pd.DataFrame(columns=[*keys, *BOUNDS])
    )
    out = out.merge(bounds, on=keys, how="left")
    return out[
        [
            *keys,
            "seconds",
            "checkout_rate_per_s",
            "checkout_p50_ms",
            "checkout_p99_ms",
            "dashboard_rate_per_s",
            "dashboard_p99_ms",
            *BOUNDS,
        ]
    ]
