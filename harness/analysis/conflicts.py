"""Serialization failures, deadlocks and version conflicts checkout met, per architecture and
dashboard load.

A checkout that meets one is run again by its implementation (`latency.retries`, at most
`--retries` times); what still fails is an error `serialization_failure`, `deadlock` or (an
event-sourced architecture whose stream moved on since it was loaded) `version_conflict`. Its
conflict rate is (retries + those errors) per checkout, over the measure phase. Under
SERIALIZABLE, dashboards' reads of the tables checkout writes take predicate locks: a checkout
that writes what a running dashboard read is the one PostgreSQL aborts. So a conflict rate that
rises with the analysts on an architecture, and not on one whose dashboards read other tables, is
the dashboards' doing; the rest is checkouts conflicting with each other on hot products.
Intervals: 95% bootstrap over the measured seconds.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.analysis.interference import with_analysts
from harness.analysis.latency import headline_kind, measured
from harness.analysis.load import Loaded, once

RETRIED = ("serialization_failure", "deadlock", "version_conflict")  # left after the retries
OPERATION = "checkout"


@dataclass(frozen=True)
class Rate:
    """Conflicts (retries + failures) per checkout at one load level."""

    checkouts: int
    retries: int
    failed: int
    seconds: pd.DataFrame  # per measured second: checkouts, conflicts

    @property
    def value(self) -> float:
        return (self.retries + self.failed) / self.checkouts if self.checkouts else float("nan")

    def describe(self) -> str:
        return (
            f"{self.value:.1%} of {self.checkouts:,} checkouts ({self.retries:,} "
            f"{'retry' if self.retries == 1 else 'retries'}, {self.failed:,} failed)"
        )


@once
def per_second(data: Loaded) -> pd.DataFrame:
    """Per run, implementation and measured second: analysts, checkouts, retries, failed."""
    latency = measured(with_analysts(data))
    latency = latency[
        (latency["kind"] == headline_kind(latency)) & (latency["operation"] == OPERATION)
    ]
    keys = ["run", "impl", "second"]
    if "retries" not in latency:  # results before version 4
        latency = latency.assign(retries=0)
    frame = latency.groupby([*keys, "analysts"], as_index=False)[["count", "retries"]].sum()
    errors = data.table("errors")
    if frame.empty or errors.empty:
        return frame.assign(failed=0).rename(columns={"count": "checkouts"})
    failed = errors[
        (errors["phase"] == "measure")
        & (errors["operation"] == OPERATION)
        & errors["error"].isin(RETRIED)
    ]
    failed = failed.groupby(keys, as_index=False)["count"].sum().rename(columns={"count": "failed"})
    frame = frame.merge(failed, on=keys, how="left").fillna({"failed": 0})
    return frame.rename(columns={"count": "checkouts"})


def overall(data: Loaded) -> pd.DataFrame:
    """Per run and implementation, checkout's conflict rate over the whole measure phase, in
    percent of its checkouts (retries and what failed after them)."""
    frame = per_second(data)
    if frame.empty:
        return pd.DataFrame(columns=["run", "impl", "conflicts_pct"])
    totals = frame.groupby(["run", "impl"], as_index=False)[
        ["checkouts", "retries", "failed"]
    ].sum()
    pct = (
        100
        * (totals["retries"] + totals["failed"])
        / totals["checkouts"].where(totals["checkouts"] > 0)
    )
    return totals.assign(conflicts_pct=pct)[["run", "impl", "conflicts_pct"]]


def rate(data: Loaded, impl: str, analysts: float) -> Rate | None:
    """`impl`'s conflict rate at `analysts`; None when it placed no checkout there."""
    frame = per_second(data)
    frame = frame[(frame["impl"] == impl) & (frame["analysts"] == analysts)]
    if frame.empty or not frame["checkouts"].sum():
        return None
    seconds = pd.DataFrame(
        {
            "checkouts": frame["checkouts"].to_numpy(dtype=float),
            "conflicts": (frame["retries"] + frame["failed"]).to_numpy(dtype=float),
        }
    )
    return Rate(
        int(frame["checkouts"].sum()),
        int(frame["retries"].sum()),
        int(frame["failed"].sum()),
        seconds,
    )


def any_conflicts(data: Loaded) -> bool:
    """Whether any checkout of these runs was retried or failed for a conflict."""
    frame = per_second(data)
    return bool(len(frame) and (frame["retries"].sum() + frame["failed"].sum()) > 0)


def rise_interval(a: Rate, b: Rate, resamples: int = 2000, seed: int = 0) -> tuple[float, float]:
    """95% bootstrap interval of b.value − a.value, each resampled over its own seconds (a rate
    as the ratio of the resampled sums)."""
    rng = np.random.default_rng(seed)
    draws = []
    for one in (a, b):
        n = len(one.seconds)
        pick = rng.integers(0, n, size=(resamples, n))
        checkouts = one.seconds["checkouts"].to_numpy()[pick].sum(axis=1)
        conflicts = one.seconds["conflicts"].to_numpy()[pick].sum(axis=1)
        draws.append(conflicts / np.maximum(checkouts, 1))
    low, high = np.percentile(draws[1] - draws[0], [2.5, 97.5])
    return float(low), float(high)


__all__ = ["RETRIED", "Rate", "any_conflicts", "per_second", "rate", "rise_interval"]
