"""Charts (matplotlib), each readable on its own: a title, units, a legend and the runs it came
from. Every function takes tidy tables from the other analysis modules and returns a Figure. The backend is the caller's choice: the
report and the CLI use Agg (files, no window), a notebook its inline backend."""

from __future__ import annotations

import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from harness.analysis.frontier import best_near_corner, pareto
from harness.runner.latency import PERCENTILES

COLORS = {"crud": "tab:red", "cqrs-logical": "tab:blue", "cqrs-physical": "tab:green"}
WAIT_COLORS = {"Lock": "tab:red", "LWLock": "tab:orange", "IO": "tab:purple", "CPU": "tab:gray",
               "Client": "tab:olive", "IPC": "tab:cyan", "Timeout": "tab:brown",
               "Activity": "tab:pink"}  # fmt: skip


def _label(frame: pd.DataFrame, row) -> str:
    """The impl, plus the run when the table holds several."""
    several = frame["run"].nunique() > 1
    return f"{row['impl']} ({row['run']})" if several else str(row["impl"])


def _finish(fig: Figure, title: str, runs: list[str]) -> Figure:
    fig.suptitle(title)
    fig.text(0.01, 0.005, "runs: " + ", ".join(dict.fromkeys(runs)), fontsize=7, color="gray")
    fig.tight_layout(rect=(0, 0.03, 1, 1))
    return fig


def _empty(title: str, runs: list[str], why: str) -> Figure:
    fig, ax = plt.subplots(figsize=(6, 2.5))
    ax.axis("off")
    ax.text(0.5, 0.5, why, ha="center", va="center")
    return _finish(fig, title, runs)


def latency_percentiles(table: pd.DataFrame, operations: list[str], runs: list[str]) -> Figure:
    """Percentile ladder (p50 ... p99.9, max) per operation, one line per architecture."""
    names = [*PERCENTILES, "max_ms"]
    ticks = [n.removesuffix("_ms").replace("p999", "p99.9") for n in names]
    fig, axes = plt.subplots(1, len(operations), figsize=(4.2 * len(operations), 3.8),
                             squeeze=False, sharey=True)  # fmt: skip
    for ax, op in zip(axes[0], operations, strict=True):
        for _, row in table[table["operation"] == op].iterrows():
            ax.plot(ticks, [row[n] for n in names], marker="o", label=_label(table, row),
                    color=COLORS.get(row["impl"]))  # fmt: skip
        ax.set_title(op)
        ax.set_yscale("log")
        ax.set_xlabel("percentile")
        ax.grid(alpha=0.3)
    axes[0][0].set_ylabel("latency (ms, log)")
    axes[0][0].legend(fontsize=8)
    return _finish(fig, "Latency percentiles per operation (measure phase)", runs)


def latency_cdf(cdf: pd.DataFrame, operations: list[str], runs: list[str]) -> Figure:
    """Cumulative distribution of latency per operation, one line per architecture."""
    fig, axes = plt.subplots(1, len(operations), figsize=(4.5 * len(operations), 3.8),
                             squeeze=False)  # fmt: skip
    for ax, op in zip(axes[0], operations, strict=True):
        part = cdf[cdf["operation"] == op]
        for (run, impl), group in part.groupby(["run", "impl"]):
            ax.step(group["latency_ms"], group["fraction"], where="post", color=COLORS.get(impl),
                    label=_label(part, {"run": run, "impl": impl}))  # fmt: skip
        ax.set_xscale("log")
        ax.set_title(op)
        ax.set_xlabel("latency (ms, log)")
        ax.set_ylabel("fraction of calls ≤ latency")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    return _finish(fig, "Latency CDF (measure phase)", runs)


def over_time(
    points: pd.DataFrame, analysts: pd.DataFrame | None, runs: list[str], what: str = "checkout p99"
) -> Figure:
    """A latency figure per window over elapsed time, one line per architecture; the number of
    analysts on a second axis when known."""
    fig, ax = plt.subplots(figsize=(8, 4))
    for (run, impl), group in points.groupby(["run", "impl"]):
        ax.plot(group["elapsed_s"], group["value_ms"], marker=".", color=COLORS.get(impl),
                label=_label(points, {"run": run, "impl": impl}))  # fmt: skip
    ax.set_xlabel("seconds since the load started (warm-up included)")
    ax.set_ylabel(f"{what} (ms)")
    ax.grid(alpha=0.3)
    if analysts is not None and analysts["analysts"].notna().any():
        twin = ax.twinx()
        for _, group in analysts.groupby("run"):
            twin.step(group["elapsed_s"], group["analysts"], where="post", color="black",
                      alpha=0.4, linestyle="--", label="analysts")  # fmt: skip
        twin.set_ylabel("analysts (dashboard users)")
        twin.legend(loc="upper right", fontsize=8)
    ax.legend(loc="upper left", fontsize=8)
    return _finish(fig, f"{what.capitalize()} over time", runs)


def interference(curve: pd.DataFrame, runs: list[str]) -> Figure:
    """Checkout p99 against the number of analysts, one line per architecture."""
    if curve.empty or curve["analysts"].isna().all():
        return _empty("Interference curve", runs, "no analyst counts (shape unknown)")
    fig, ax = plt.subplots(figsize=(7, 4))
    for impl, group in curve.groupby("impl"):
        group = group.groupby("analysts", as_index=False).agg(
            p99=("checkout_p99_ms", "median"), rate=("dashboard_rate_per_s", "mean")
        )
        ax.plot(group["analysts"], group["p99"], marker="o", color=COLORS.get(impl), label=impl)
        for row in group.itertuples():
            ax.annotate(f"{row.rate:.1f} q/s", (row.analysts, row.p99), fontsize=7,
                        textcoords="offset points", xytext=(3, 3))  # fmt: skip
    ax.set_xlabel("analysts running dashboards (labels: dashboard queries/s)")
    ax.set_ylabel("checkout p99 (ms)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _finish(fig, "Interference: checkout p99 against dashboard load", runs)


def frontier(curve: pd.DataFrame, runs: list[str]) -> Figure:
    """Checkout rate against dashboard rate; the Pareto frontier and the point nearest the
    corner of the best rates."""
    if curve.empty:
        return _empty("Throughput frontier", runs, "no measured points")
    fig, ax = plt.subplots(figsize=(7, 4.5))
    for impl, group in curve.groupby("impl"):
        group = group.sort_values("dashboard_rate_per_s")
        ax.plot(group["dashboard_rate_per_s"], group["checkout_rate_per_s"], marker="o",
                color=COLORS.get(impl), label=impl, alpha=0.8)  # fmt: skip
    front = pareto(curve)
    ax.plot(front["dashboard_rate_per_s"], front["checkout_rate_per_s"], color="black",
            linestyle=":", label="frontier")  # fmt: skip
    best = best_near_corner(curve)
    ax.scatter([best["dashboard_rate_per_s"]], [best["checkout_rate_per_s"]], s=180,
               facecolors="none", edgecolors="black", label=f"nearest the corner: {best['impl']}")  # fmt: skip
    ax.set_xlabel("dashboard queries per second")
    ax.set_ylabel("checkouts per second")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _finish(fig, "Throughput frontier: checkout rate against dashboard rate", runs)


def waits_over_time(waits: pd.DataFrame, runs: list[str]) -> Figure:
    """Average sessions per wait type over time, one panel per architecture and server."""
    if waits.empty:
        return _empty("Wait events over time", runs, "no active-session samples")
    panels = list(waits.groupby(["impl", "server"]).groups)
    fig, axes = plt.subplots(len(panels), 1, figsize=(8, 2.2 * len(panels)), squeeze=False,
                             sharex=True)  # fmt: skip
    for ax, (impl, server) in zip(axes[:, 0], panels, strict=True):
        part = waits[(waits["impl"] == impl) & (waits["server"] == server)]
        wide = part.pivot_table(index="elapsed_s", columns="wait_event_type", values="sessions",
                                aggfunc="mean", fill_value=0)  # fmt: skip
        ax.stackplot(wide.index, wide.T.to_numpy(), labels=list(wide.columns),
                     colors=[WAIT_COLORS.get(c, "tab:gray") for c in wide.columns], step="post")  # fmt: skip
        ax.set_title(f"{impl}, {server} server", fontsize=9)
        ax.set_ylabel("sessions")
        ax.legend(fontsize=7, loc="upper right", ncol=4)
    axes[-1, 0].set_xlabel("seconds since the load started")
    return _finish(fig, "Active sessions by wait type (pg_stat_activity, ~10 Hz)", runs)


def lock_wait_seconds(table: pd.DataFrame, runs: list[str]) -> Figure:
    """Lock-wait session-seconds per architecture and server over the measure phase."""
    fig, ax = plt.subplots(figsize=(6, 3.5))
    wide = table.pivot_table(index="impl", columns="server", values="lock_wait_s", aggfunc="sum",
                             fill_value=0)  # fmt: skip
    if wide.empty:
        return _empty("Lock-wait seconds", runs, "no samples")
    wide.plot.bar(ax=ax, rot=0)
    ax.set_ylabel("lock-wait session-seconds")
    ax.set_xlabel("")
    ax.grid(alpha=0.3, axis="y")
    return _finish(fig, "Lock waits per architecture (measure phase)", runs)


def distribution(cdf: pd.DataFrame, value: str, xlabel: str, title: str, runs: list[str]) -> Figure:
    """Empirical CDFs of `value` (lag or freshness), one line per architecture."""
    if cdf.empty:
        return _empty(title, runs, "no samples (no CQRS architecture or no dashboard load)")
    fig, ax = plt.subplots(figsize=(7, 4))
    for (run, impl), group in cdf.groupby(["run", "impl"]):
        ax.step(group[value], group["fraction"], where="post", color=COLORS.get(impl),
                label=_label(cdf, {"run": run, "impl": impl}))  # fmt: skip
    ax.set_xlabel(xlabel)
    ax.set_ylabel("fraction ≤ value")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _finish(fig, title, runs)


def lag_over_time(lag: pd.DataFrame, runs: list[str]) -> Figure:
    """The projection's backlog over time: events behind and age of the oldest unapplied one."""
    if lag.empty:
        return _empty("Projection lag over time", runs, "no lag samples (no CQRS architecture)")
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 5), sharex=True)
    for (run, impl), group in lag.groupby(["run", "impl"]):
        label = _label(lag, {"run": run, "impl": impl})
        top.plot(group["elapsed_s"], group["events_behind"], color=COLORS.get(impl), label=label)
        bottom.plot(group["elapsed_s"], group["oldest_unapplied_age_ms"].fillna(0),
                    color=COLORS.get(impl), label=label)  # fmt: skip
    top.set_ylabel("events behind")
    bottom.set_ylabel("oldest unapplied (ms)")
    bottom.set_xlabel("seconds since the load started")
    for ax in (top, bottom):
        ax.grid(alpha=0.3)
    top.legend(fontsize=8)
    return _finish(fig, "Projection backlog over time (~2 Hz)", runs)


def cpu(table: pd.DataFrame, runs: list[str]) -> Figure:
    """CPU cores per component, stacked per architecture (measure phase)."""
    if table.empty:
        return _empty("CPU per component", runs, "no resource samples")
    wide = table.pivot_table(index="impl", columns="component", values="cores", aggfunc="mean",
                             fill_value=0)  # fmt: skip
    fig, ax = plt.subplots(figsize=(7, 4))
    wide.plot.bar(stacked=True, ax=ax, rot=0)
    ax.set_ylabel("CPU cores (average over the measure phase)")
    ax.set_xlabel("")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8)
    return _finish(fig, "CPU per component", runs)
