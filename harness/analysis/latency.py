"""Latency from the per-second HdrHistograms of latency.parquet, merged exactly.

Percentiles are never averaged: the histograms of the seconds wanted are summed bucket by bucket
and the percentile is read from the sum, by the same rule as `HdrHistogram.get_value_at_percentile`
(the highest value equivalent to the first bucket whose cumulative count reaches the target).
Histograms are handled as numpy count vectors so that sums over any set of seconds (a phase, a
stage of the shape, a bootstrap resample) are cheap.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np
import pandas as pd
from hdrh.histogram import HdrHistogram

from harness.runner.latency import PERCENTILES, figures, new_histogram

DASHBOARD = "dashboard"  # all dashboard_* operations taken together
KEYS = ["run", "impl", "operation", "kind"]
_LAYOUT = new_histogram()  # every histogram of a run has this bucket layout


def merge(encoded: Iterable[str]) -> HdrHistogram:
    """One HdrHistogram holding every given one (base64; "" = no successful call)."""
    total = new_histogram()
    for blob in encoded:
        if blob:
            total.add(HdrHistogram.decode(blob))
    return total


def count_vector(blob: str) -> np.ndarray:
    """The bucket counts of one encoded histogram (zeros for "")."""
    if not blob:
        return np.zeros(_LAYOUT.counts_len, dtype=np.int64)
    hist = HdrHistogram.decode(blob)
    if hist.counts_len != _LAYOUT.counts_len or hist.unit_magnitude != _LAYOUT.unit_magnitude:
        merged = new_histogram()  # another layout: re-record into ours
        merged.add(hist)
        hist = merged
    return np.ctypeslib.as_array(hist.counts).astype(np.int64)


class Buckets:
    """Histograms as rows of a count matrix over the buckets any of them uses."""

    def __init__(self, blobs: Sequence[str]) -> None:
        full = (
            np.stack([count_vector(b) for b in blobs])
            if len(blobs)
            else np.zeros((0, _LAYOUT.counts_len), dtype=np.int64)
        )
        used = np.flatnonzero(full.sum(axis=0))
        self.matrix = full[:, used]
        self.values_us = np.array(
            [
                _LAYOUT.get_highest_equivalent_value(_LAYOUT.get_value_from_index(int(i)))
                for i in used
            ],
            dtype=np.float64,
        )

    def total(self, weights: np.ndarray | None = None) -> np.ndarray:
        """Counts summed over rows (each row taken `weights[i]` times)."""
        return self.matrix.sum(axis=0) if weights is None else weights @ self.matrix


def value_at_percentile(values_us: np.ndarray, counts: np.ndarray, percentile: float) -> float:
    """Milliseconds at `percentile` of bucket `counts` (NaN when empty), as HdrHistogram reads it."""
    total = int(counts.sum())
    if total == 0:
        return float("nan")
    target = max(int(min(percentile, 100.0) * total / 100 + 0.5), 1)
    index = int(np.searchsorted(np.cumsum(counts), target))
    return float(values_us[index]) / 1000


def figures_of(blobs: Sequence[str]) -> dict[str, float]:
    """p50 ... p99.9, max and mean in ms of the merged histograms (NaN when no call)."""
    hist = merge(blobs)
    return figures(hist, hist.get_total_count())


def with_dashboard(latency: pd.DataFrame) -> pd.DataFrame:
    """`latency` plus its dashboard_* rows again under the operation `dashboard` (all of them)."""
    dash = latency[latency["operation"].str.startswith("dashboard_")].assign(operation=DASHBOARD)
    return pd.concat([latency, dash], ignore_index=True)


def headline_kind(latency: pd.DataFrame) -> str:
    """`intended` when the run was open loop (it corrects coordinated omission), else `service`."""
    return "intended" if (latency["kind"] == "intended").any() else "service"


def measured(latency: pd.DataFrame) -> pd.DataFrame:
    return latency[latency["phase"] == "measure"]


def seconds_per(latency: pd.DataFrame, keys: list[str]) -> pd.Series:
    """Distinct seconds with any call, per `keys` (operation and kind ignored)."""
    return latency.groupby(keys)["second"].nunique().rename("seconds")


def percentiles(latency: pd.DataFrame, by: list[str] | None = None) -> pd.DataFrame:
    """Exact figures per group: count, errors, seconds, rate_per_s, p50_ms ... max_ms, mean_ms.

    `by` defaults to run, impl, operation, kind; `seconds` counts the distinct seconds of the
    group's run and implementation (and of any other key that is not operation or kind)."""
    by = by or KEYS
    if latency.empty:
        return pd.DataFrame(
            columns=[
                *by,
                "count",
                "errors",
                "seconds",
                "rate_per_s",
                *PERCENTILES,
                "max_ms",
                "mean_ms",
            ]
        )
    span_keys = [k for k in by if k not in ("operation", "kind")]
    rows = []
    for key, group in latency.groupby(by, sort=True):
        rows.append(
            {
                **dict(zip(by, key, strict=True)),
                "count": int(group["count"].sum()),
                "errors": int(group["errors"].sum()),
                **figures_of(list(group["hdr"])),
            }
        )
    table = pd.DataFrame(rows).merge(seconds_per(latency, span_keys).reset_index(), on=span_keys)
    table["rate_per_s"] = table["count"] / table["seconds"]
    return table[
        [*by, "count", "errors", "seconds", "rate_per_s", *PERCENTILES, "max_ms", "mean_ms"]
    ]


def cdf(latency: pd.DataFrame, by: list[str] | None = None) -> pd.DataFrame:
    """The exact distribution per group: `latency_ms` (bucket value) and `fraction` ≤ it."""
    by = by or KEYS
    frames = []
    for key, group in latency.groupby(by, sort=True):
        buckets = Buckets(list(group["hdr"]))
        counts = buckets.total()
        if counts.sum() == 0:
            continue
        frames.append(
            pd.DataFrame(
                {
                    **dict(zip(by, key, strict=True)),
                    "latency_ms": buckets.values_us / 1000,
                    "fraction": np.cumsum(counts) / counts.sum(),
                }
            )
        )
    return (
        pd.concat(frames, ignore_index=True)
        if frames
        else pd.DataFrame(columns=[*by, "latency_ms", "fraction"])
    )


def over_time(
    latency: pd.DataFrame,
    percentile: float = 99,
    window_s: float = 1.0,
    by: list[str] | None = None,
) -> pd.DataFrame:
    """`percentile` per window of `window_s` seconds of elapsed time (all phases), per group:
    `elapsed_s` (window start), `count`, `rate_per_s`, `value_ms`."""
    by = by or KEYS
    frame = latency.assign(window=(latency["elapsed_s"] // window_s) * window_s)
    rows = []
    for key, group in frame.groupby([*by, "window"], sort=True):
        buckets = Buckets(list(group["hdr"]))
        rows.append(
            {
                **dict(zip([*by, "elapsed_s"], key, strict=True)),
                "count": int(group["count"].sum()),
                "rate_per_s": group["count"].sum() / window_s,
                "value_ms": value_at_percentile(buckets.values_us, buckets.total(), percentile),
            }
        )
    return pd.DataFrame(rows, columns=[*by, "elapsed_s", "count", "rate_per_s", "value_ms"])
