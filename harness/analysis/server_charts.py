"""Charts of what the server did for the architectures: where checkout's sessions' sampled time
went, and the xmin horizon with the dead tuples it left (issue 16, items 3 and 4). They keep
the rules of harness.analysis.charts."""

from __future__ import annotations

import numpy as np
import pandas as pd
from matplotlib import pyplot as plt
from matplotlib.figure import Figure

from harness.analysis.charts import (
    WAIT_COLORS,
    _elapsed_label,
    _empty,
    _finish,
    _impls,
    _phases,
    _series,
)
from harness.analysis.server_time import CATEGORIES
from harness.collectors.activity import HZ as ACTIVITY_HZ
from harness.collectors.wait_profile import PROFILE_HZ

FEW_S = 5.0  # session-seconds sampled (50 activity samples): a level resting on less is marked
SAMPLE_S = {"activity": 1 / ACTIVITY_HZ, "pg_wait_sampling": 1 / PROFILE_HZ}


def command_wait_shares(shares: pd.DataFrame, runs: list[str]) -> Figure:
    """Stacked shares of checkout's sessions' sampled server time per category, one bar per
    architecture and number of analysts, with the samples each rests on written above it."""
    title = "Where checkout's server time goes (measure phase)"
    if shares.empty:
        return _empty(title, runs, "no samples of checkout's sessions")
    several = shares["run"].nunique() > 1
    shares = shares if "source" in shares else shares.assign(source="activity")
    bars = (
        shares[["run", "impl", "analysts", "level_samples", "source"]]
        .drop_duplicates()
        .assign(level_s=lambda f: f["level_samples"] * f["source"].map(SAMPLE_S))
        .assign(order=lambda f: f["impl"].map({i: k for k, i in enumerate(_impls(f))}))
        .sort_values(["run", "order", "analysts"], ignore_index=True)
    )
    fig, ax = plt.subplots(figsize=(max(6.0, 0.75 * len(bars) + 2.5), 4.6))
    x = np.arange(len(bars))
    bottom = np.zeros(len(bars))
    for name in CATEGORIES:
        part = shares[shares["category"] == name]
        values = (
            bars.merge(part, on=["run", "impl", "analysts"], how="left")["share"].fillna(0) * 100
        ).to_numpy()
        other = name not in WAIT_COLORS  # hatched, not to be read as CPU's grey
        ax.bar(
            x,
            values,
            0.7,
            bottom=bottom,
            label=name,
            color=WAIT_COLORS.get(name, "white"),
            edgecolor="0.4" if other else None,
            hatch="..." if other else None,
        )
        bottom += values
    for xi, n, level_s in zip(x, bars["level_samples"], bars["level_s"], strict=True):
        colour = "dimgray" if level_s >= FEW_S else "tab:red"
        ax.text(xi, 101, f"n={n}", ha="center", va="bottom", fontsize=7, color=colour)
    ticks = [
        f"{r.impl}\n{r.analysts:g} analysts" + (f"\n{r.run.rsplit('/', 1)[-1]}" if several else "")
        for r in bars.itertuples()
    ]
    ax.set_xticks(x, ticks, fontsize=7)
    if len(bars) > 6:
        plt.setp(ax.get_xticklabels(), rotation=30, ha="right")
    ax.set_ylim(0, 110)
    ax.set_yticks(range(0, 101, 20))
    sources = ", ".join(
        f"{source}: 1 sample = {SAMPLE_S[source]:g} s" for source in sorted(set(bars["source"]))
    )
    ax.set_ylabel(f"share of sampled session time (%)\n({sources})")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    if bars["level_s"].min() < FEW_S:
        ax.set_xlabel(
            f"red n: less than {FEW_S:g} s of session time sampled, too little to read shares from",
            fontsize=8,
        )
    return _finish(fig, title, runs)


def horizon_over_time(
    horizon: pd.DataFrame,
    stats: pd.DataFrame,
    runs: list[str],
    measure_s: tuple[float, float] | None = None,
    analysts: pd.DataFrame | None = None,
    table: str = "products",
) -> Figure:
    """Top: the age of the transaction holding the oldest snapshot of the write database, per
    architecture; bottom: the dead tuples of `table` there. Both from zero, what is outside the
    measure phase shaded."""
    title = "The xmin horizon and dead tuples over time"
    horizon = horizon[horizon["server"] == "write"] if len(horizon) else horizon
    stats = (
        stats[(stats["server"] == "write") & (stats["relation"] == table)] if len(stats) else stats
    )
    if horizon.empty and stats.empty:
        return _empty(title, runs, "no horizon or table samples (runs before results schema 4)")
    # short transactions only: milliseconds, not a row of zeros
    in_ms = horizon.empty or horizon["xact_age_s"].max() < 2
    if len(horizon):
        horizon = horizon.assign(age=horizon["xact_age_s"] * (1000 if in_ms else 1))
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8.5, 5.4), sharex=True)
    for frame, ax, column in ((horizon, top, "age"), (stats, bottom, "dead_tuples")):
        if frame.empty:
            continue
        for one in _series(frame):
            rows = one.rows.sort_values("elapsed_s")
            ax.step(
                rows["elapsed_s"],
                rows[column],
                where="post",
                color=one.color,
                linestyle=one.linestyle,
                label=one.label,
            )
    top.set_ylabel(f"oldest transaction\nholding a snapshot ({'ms' if in_ms else 's'})")
    bottom.set_ylabel(f"dead tuples of {table}")
    bottom.set_xlabel(_elapsed_label(measure_s))
    for ax in (top, bottom):
        ax.set_ylim(bottom=0)
        ax.grid(alpha=0.3)
    for ax in (top, bottom):
        _phases(ax, measure_s, analysts)
    top.legend(fontsize=8, loc="upper left")
    return _finish(fig, title + " (write database)", runs)
