"""Charts (matplotlib), each readable on its own: a title, units, a legend and the runs it came
from. Every function takes tidy tables from the other analysis modules and returns a Figure. The backend is the caller's choice: the
report and the CLI use Agg (files, no window), a notebook its inline backend.

Rules every chart keeps, so that noise never reads as an effect: a figure compared between
architectures carries its 95% interval when the table gives one (`<column>_lo`, `<column>_hi`);
absolute quantities (latency, rates, CPU, seconds) are drawn from zero; a "best" is marked only
when it is better beyond those intervals; a quantity that never changes is said in words, not
drawn on an axis; counts of samples are written on their bars."""

from __future__ import annotations

import math
from typing import NamedTuple

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.axes import Axes
from matplotlib.container import BarContainer
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from harness.analysis.frontier import X, Y, best_near_corner, corner_distance, pareto
from harness.analysis.resources import OUTSIDE
from harness.collectors.activity import HZ as ACTIVITY_HZ
from harness.runner.latency import PERCENTILES
from implementations import registry


def colour(impl: str) -> str | None:
    """`impl`'s colour as its architecture.toml declares it (None: matplotlib's next colour,
    for an architecture this tree no longer has)."""
    known = registry.architectures().get(impl)
    return known.colour if known else None


WAIT_COLORS = {
    "Lock": "tab:red",
    "LWLock": "tab:orange",
    "IO": "tab:purple",
    "CPU": "tab:gray",
    "Client": "tab:olive",
    "IPC": "tab:cyan",
    "Timeout": "tab:brown",
    "Activity": "tab:pink",
}
COMPONENT_COLORS = {
    "write_server": "tab:brown",
    "read_server": "tab:olive",
    "standby_server": "tab:cyan",
    "refresher": "gold",
    "service": "tab:purple",
    "projector": "tab:orange",
    "locust": "tab:gray",
    "runner": "tab:pink",
}
FEW_SAMPLES = 10  # fewer Lock samples than this (1 s of waiting) are too few to compare
MAX_STAGES = 12  # more analyst levels than this over time: a ramp, drawn on its own axis
LINESTYLES = ["-", "--", ":", "-."]  # per run, when a chart holds several
HATCHES = ["", "//", "..", "xx"]


class Series(NamedTuple):
    """What one line or set of bars draws: its legend label, colour (the implementation's),
    rows, and `run`, the index of its run (its line style or hatch)."""

    label: str
    color: str | None
    rows: pd.DataFrame
    run: int = 0

    @property
    def linestyle(self) -> str:
        return LINESTYLES[self.run % len(LINESTYLES)]

    @property
    def hatch(self) -> str:
        return HATCHES[self.run % len(HATCHES)]


def _label(frame: pd.DataFrame, row) -> str:
    """The impl, plus the run when the table holds several."""
    several = frame["run"].nunique() > 1
    return f"{row['impl']} ({row['run']})" if several else str(row["impl"])


def _finish(fig: Figure, title: str, runs: list[str], legend_of: Axes | None = None) -> Figure:
    """Title, runs and layout; the legend of `legend_of` (when given) under the axes, where it
    covers no data."""
    fig.suptitle(title)
    fig.text(0.01, 0.005, "runs: " + ", ".join(dict.fromkeys(runs)), fontsize=7, color="gray")
    handles, labels = legend_of.get_legend_handles_labels() if legend_of else ([], [])
    inch, below = 1 / fig.get_figheight(), 0.12
    if handles:
        entry = (max(map(len, labels)) + 6) * 0.075  # inches, at 8 points
        columns = max(1, min(len(handles), int(fig.get_figwidth() // entry)))
        fig.legend(
            handles,
            labels,
            loc="lower center",
            ncol=columns,
            fontsize=8,
            bbox_to_anchor=(0.5, 0.12 * inch),
            frameon=False,
        )
        below += 0.1 + 0.2 * math.ceil(len(handles) / columns)
    fig.tight_layout(rect=(0, below * inch, 1, 1))
    return fig


def _empty(title: str, runs: list[str], why: str) -> Figure:
    fig, ax = plt.subplots(figsize=(6, 2.5))
    ax.axis("off")
    ax.text(0.5, 0.5, why, ha="center", va="center", wrap=True)
    return _finish(fig, title, runs)


def _plain_log(ax: Axes, axis: str = "x") -> None:
    """A log axis ticked at 1, 2, 5 × 10^k with plain numbers (no overlapping minor labels)."""
    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
    target.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    target.set_minor_formatter(NullFormatter())


def _interval(frame: pd.DataFrame, column: str) -> np.ndarray | None:
    """Error bar lengths (below, above) of `column` from its `_lo`/`_hi` columns; None when the
    table has none. A bound on the wrong side of the value (a bootstrap can put it there) is 0."""
    if f"{column}_lo" not in frame or f"{column}_hi" not in frame:
        return None
    value = frame[column].to_numpy(dtype=float)
    low = np.clip(value - frame[f"{column}_lo"].to_numpy(dtype=float), 0, None)
    high = np.clip(frame[f"{column}_hi"].to_numpy(dtype=float) - value, 0, None)
    return np.nan_to_num(np.vstack([low, high]))


def _bars(ax: Axes, groups: list[str], series: list[Series], column: str) -> list[BarContainer]:
    """Side-by-side bars of `column` from zero, one per group (a row of each series' rows, in
    the order of `groups`) and series, with their intervals when the rows give them; the bars
    of each series."""
    width = 0.8 / max(len(series), 1)
    containers = []
    for k, one in enumerate(series):
        x = np.arange(len(groups)) + (k - (len(series) - 1) / 2) * width
        values = one.rows[column]
        containers.append(
            ax.bar(
                x,
                values,
                width,
                color=one.color,
                label=one.label,
                alpha=0.85,
                hatch=one.hatch,
                edgecolor="white",
            )
        )
        if (error := _interval(one.rows, column)) is not None:
            ax.errorbar(x, values, yerr=error, fmt="none", ecolor="black", capsize=3, lw=1)
    ax.set_xticks(np.arange(len(groups)), groups)
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3, axis="y")
    return containers


def _impls(frame: pd.DataFrame) -> list[str]:
    """The implementations of `frame` in the registry's order (the baseline first), then any
    other."""
    order = registry.names()
    return sorted(
        frame["impl"].unique(), key=lambda i: (order.index(i) if i in order else len(order), i)
    )


def _series(frame: pd.DataFrame) -> list[Series]:
    """One Series per run and implementation of `frame`, in run then _impls order."""
    return [
        Series(_label(frame, {"run": run, "impl": impl}), colour(impl), group, k)
        for k, run in enumerate(frame["run"].unique())
        for impl in _impls(frame)
        if len(group := frame[(frame["run"] == run) & (frame["impl"] == impl)])
    ]


def _by_label(frame: pd.DataFrame, columns: str, values: str) -> pd.DataFrame:
    """`values` summed per series (as _series: per run and impl) and `columns`, one row per
    series in _series order, indexed by x tick labels: the impl, and under it the run's id when
    there are several runs."""
    labelled = frame.assign(label=[_label(frame, row) for _, row in frame.iterrows()])
    wide = labelled.pivot_table(
        index="label", columns=columns, values=values, aggfunc="sum", fill_value=0
    )
    series = _series(frame)
    ticks = [
        one.label
        if frame["run"].nunique() == 1
        else f"{one.rows['impl'].iloc[0]}\n{one.rows['run'].iloc[0].rsplit('/', 1)[-1]}"
        for one in series
    ]
    return wide.reindex([one.label for one in series]).set_axis(ticks, axis=0)


def _stages(analysts: pd.DataFrame | None) -> pd.Series:
    """Analysts per elapsed second (the median over runs and implementations, rounded), NaN
    left out; empty when they disagree in more than a tenth of the seconds (runs of different
    shapes: no one count to mark)."""
    if analysts is None or analysts.empty or analysts["analysts"].isna().all():
        return pd.Series(dtype=float)
    per_second = analysts.dropna(subset=["analysts"]).groupby("elapsed_s")["analysts"]
    if ((per_second.max() - per_second.min()) > 0).mean() > 0.1:
        return pd.Series(dtype=float)
    return per_second.median().round().sort_index()


def _elapsed_label(measure_s: tuple[float, float] | None) -> str:
    return "seconds since the load started" + (" (shaded: not measured)" if measure_s else "")


def _phases(ax: Axes, measure_s: tuple[float, float] | None, analysts: pd.DataFrame | None) -> str:
    """Shade what is outside the measure phase (`measure_s`: its start and end in seconds since
    the load started): the warm-up, and what was sampled after the load; mark where the number
    of analysts changes (a line and the new count), or draw it on a second axis when it ramps.
    The text to add to the title when it never changes ("" otherwise)."""
    if measure_s:
        start, end = measure_s
        if start > 0:
            ax.axvspan(0, start, color="0.88", zorder=0, label="warm-up")
        right = ax.get_xlim()[1]
        if right > end:
            ax.axvspan(
                end,
                right,
                facecolor="0.88",
                hatch="//",
                edgecolor="0.75",
                zorder=0,
                label="after the measure phase",
            )
            ax.set_xlim(right=right)
    per_second = _stages(analysts)
    if per_second.empty:
        return ""
    starts = per_second[per_second.ne(per_second.shift())]
    if len(starts) == 1:
        return f"{starts.iloc[0]:g} analysts throughout"
    if len(starts) > MAX_STAGES:
        twin = ax.twinx()
        twin.step(
            per_second.index,
            per_second.to_numpy(),
            where="post",
            color="black",
            alpha=0.4,
            linestyle="--",
        )
        twin.set_ylabel("analysts (dashboard users, dashed)")
        twin.set_ylim(bottom=0)
        return ""
    top = ax.get_ylim()[1]
    ax.set_ylim(top=top * 1.12)  # room for the stage labels
    for i, (start, count) in enumerate(starts.items()):
        if i:
            ax.axvline(start, color="black", linestyle=":", lw=0.8)
        ax.text(
            start,
            top * 1.1,
            f" {count:g}" + (" analyst" + "s" * (count != 1)) * (i == 0),
            fontsize=7,
            va="top",
            ha="left",
        )
    return ""


def _ladder(row: pd.DataFrame, names: list[str]) -> pd.DataFrame:
    """One row of a percentiles table as one row per percentile: `value` and, when the table
    has them, `value_lo`/`value_hi`."""
    first = row.iloc[0]
    long = pd.DataFrame({"value": [first[n] for n in names]})
    if all(f"{n}_lo" in row and f"{n}_hi" in row for n in names):
        long["value_lo"] = [first[f"{n}_lo"] for n in names]
        long["value_hi"] = [first[f"{n}_hi"] for n in names]
    return long.astype(float)


def latency_percentiles(table: pd.DataFrame, operations: list[str], runs: list[str]) -> Figure:
    """Percentiles (p50 ... p99.9) per operation, a bar per architecture from zero with its 95%
    interval (columns `<percentile>_lo`/`_hi` when the table has them)."""
    names = list(PERCENTILES)
    ticks = [n.removesuffix("_ms").replace("p999", "p99.9") for n in names]
    columns = min(len(operations), 2)
    lines = math.ceil(len(operations) / columns)
    fig, axes = plt.subplots(
        lines, columns, figsize=(4.6 * columns, 3.3 * lines + 0.6), squeeze=False
    )
    for ax in axes.flat[len(operations) :]:
        ax.axis("off")
    for ax, op in zip(axes.flat, operations, strict=False):
        rows = table[table["operation"] == op]
        series = [one._replace(rows=_ladder(one.rows, names)) for one in _series(rows)]
        _bars(ax, ticks, series, "value")
        ax.set_title(f"{op} (n = {int(rows['count'].sum()):,} calls)", fontsize=10)
        ax.set_ylabel("latency (ms)")
    axes[0][0].set_ylabel("latency (ms)\n(whiskers: 95% interval)")
    return _finish(fig, "Latency percentiles per operation (measure phase)", runs, axes[0][0])


def _cdf_legend(ax: Axes, frame: pd.DataFrame, height: float, loc: str = "lower right") -> None:
    """A CDF's legend: at `loc` (by default its empty lower right corner), or under the axes (and
    their x label; `height`: the figure's, inches) when several runs make it long."""
    if frame["run"].nunique() > 1:
        ax.legend(fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.2 * 3.9 / height))
    else:
        ax.legend(fontsize=8, loc=loc)


def _cdf_height(frame: pd.DataFrame, height: float = 3.9) -> float:
    """A CDF figure's height, inches: `height`, plus room for a legend under the axes."""
    lines = frame[["run", "impl"]].drop_duplicates()
    return height + (0.2 * len(lines) + 0.2 if frame["run"].nunique() > 1 else 0)


def latency_cdf(
    cdf: pd.DataFrame, operations: list[str], runs: list[str], calls: pd.DataFrame | None = None
) -> Figure:
    """Cumulative distribution of latency per operation, one line per architecture (with its
    number of calls when `calls`, a latency.percentiles table, is given)."""
    height = _cdf_height(cdf)
    fig, axes = plt.subplots(
        1, len(operations), figsize=(4.8 * len(operations), height), squeeze=False
    )
    for ax, op in zip(axes[0], operations, strict=True):
        part = cdf[cdf["operation"] == op]
        for one in _series(part):
            label = one.label
            if calls is not None:
                mine = calls.merge(one.rows[["run", "impl", "operation"]].drop_duplicates())
                label += f" (n = {int(mine['count'].sum()):,})"
            ax.step(
                one.rows["latency_ms"],
                one.rows["fraction"],
                where="post",
                color=one.color,
                linestyle=one.linestyle,
                label=label,
            )
        ax.set_xscale("log")
        _plain_log(ax, "x")
        ax.set_ylim(0, 1.02)
        ax.set_title(op)
        ax.set_xlabel("latency (ms, log scale)")
        ax.set_ylabel("fraction of calls ≤ latency")
        ax.grid(alpha=0.3)
        _cdf_legend(ax, part, height)
    return _finish(fig, "Latency CDF (measure phase)", runs)


def over_time(
    points: pd.DataFrame,
    analysts: pd.DataFrame | None,
    runs: list[str],
    what: str = "checkout p99",
    measure_s: tuple[float, float] | None = None,
) -> Figure:
    """A latency figure per window over elapsed time, one line per architecture, from zero; what
    is outside the measure phase shaded and each change in the number of analysts marked."""
    fig, ax = plt.subplots(figsize=(8.5, 4.5))
    for one in _series(points):
        ax.plot(
            one.rows["elapsed_s"],
            one.rows["value_ms"],
            marker=".",
            color=one.color,
            linestyle=one.linestyle,
            label=one.label,
        )
    ax.set_ylim(bottom=0)
    constant = _phases(ax, measure_s, analysts)
    calls = points["count"].median() if "count" in points and len(points) else math.nan
    per_window = "" if math.isnan(calls) else f", each point one second (median {calls:.0f} calls)"
    ax.set_xlabel(f"seconds since the load started{per_window}")
    ax.set_ylabel(f"{what} (ms)")
    ax.grid(alpha=0.3)
    title = f"{what.capitalize()} over time" + (f" ({constant})" if constant else "")
    return _finish(fig, title, runs, ax)


def _levels(curve: pd.DataFrame) -> list[float]:
    return sorted(curve["analysts"].dropna().unique())


def _level_ticks(curve: pd.DataFrame, levels: list[float]) -> list[str]:
    """Per level: its analysts, the range of dashboard queries/s the architectures ran and the
    seconds measured at it (fewest of the architectures)."""
    ticks = []
    for level in levels:
        rates = curve.loc[curve["analysts"] == level, X]
        span = (
            f"{rates.min():.1f}"
            if rates.max() - rates.min() < 0.05
            else f"{rates.min():.1f}–{rates.max():.1f}"
        )
        seconds = curve.loc[curve["analysts"] == level].groupby("impl")["seconds"].sum().min()
        ticks.append(f"{level:g}\n{span} q/s\n{seconds:g} s")
    return ticks


def _single_level(ax: Axes, curve: pd.DataFrame, column: str, unit: str) -> None:
    """`column` of a curve with one load level: a bar per run and implementation, named under
    it, its value on it and its 95% interval as whiskers."""
    series = _series(curve)
    containers = _bars(ax, [""], series, column)
    for container in containers:
        ax.bar_label(container, fmt="%.1f", label_type="center", color="white", fontsize=9)
    ax.set_xticks(
        [c.patches[0].get_x() + c.patches[0].get_width() / 2 for c in containers],
        [one.label for one in series],
    )
    ax.set_xlim(-0.75, 0.75)
    ax.set_ylabel(f"{unit}\n(whiskers: 95% interval)")
    level = _level_ticks(curve, _levels(curve))[0].split("\n")
    ax.set_xlabel(f"{level[0]} analysts ({level[1]} dashboard, {level[2]} measured)", fontsize=9)


def interference(curve: pd.DataFrame, runs: list[str]) -> Figure:
    """Checkout p99 against the number of analysts, one line per architecture with the 95%
    interval of each point; a single load level is drawn as bars, not as a curve."""
    if curve.empty or curve["analysts"].isna().all():
        return _empty("Interference curve", runs, "no analyst counts (no users table)")
    levels = _levels(curve)
    column = "checkout_p99_ms"
    if len(levels) == 1:
        fig, ax = plt.subplots(figsize=(6, 4))
        _single_level(ax, curve, column, "checkout p99 (ms)")
        return _finish(
            fig, f"Checkout p99 at a single load level: {levels[0]:g} analysts (no curve)", runs
        )
    fig, ax = plt.subplots(figsize=(7.5, 4.4))
    impls = _impls(curve)
    position = {level: i for i, level in enumerate(levels)}
    for k, impl in enumerate(impls):
        mine = curve[curve["impl"] == impl].sort_values("analysts")
        x = mine["analysts"].map(position) + (k - (len(impls) - 1) / 2) * 0.08
        ax.errorbar(
            x,
            mine[column],
            yerr=_interval(mine, column),
            fmt="none",
            ecolor=colour(impl),
            capsize=3,
            alpha=0.7,
        )
        line = mine.groupby("analysts", as_index=False)[column].median()
        ax.plot(
            line["analysts"].map(position) + (k - (len(impls) - 1) / 2) * 0.08,
            line[column],
            marker="o",
            color=colour(impl),
            label=impl,
        )
    ax.set_xticks(range(len(levels)), _level_ticks(curve, levels), fontsize=8)
    ax.set_xlabel(
        "analysts running dashboards (the dashboard queries/s they ran, seconds measured)"
    )
    ax.set_ylabel("checkout p99 (ms) (whiskers: 95% interval)")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _finish(fig, "Interference: checkout p99 against dashboard load", runs)


def _beyond_noise(a: pd.Series, b: pd.Series, column: str) -> int:
    """+1 when `a` is higher than `b` in `column` beyond both intervals, -1 when lower, else 0."""
    if a[f"{column}_lo"] > b[f"{column}_hi"]:
        return 1
    if a[f"{column}_hi"] < b[f"{column}_lo"]:
        return -1
    return 0


def clear_best(curve: pd.DataFrame) -> pd.Series | None:
    """The point nearest the corner of the best rates (frontier.best_near_corner) when it beats
    each other architecture's nearest point beyond noise: higher on one rate with disjoint 95%
    intervals and not lower beyond them on the other; None otherwise (or without intervals)."""
    if curve.empty or not all(f"{c}_{b}" in curve for c in (X, Y) for b in ("lo", "hi")):
        return None
    best = best_near_corner(curve)
    nearest = curve.assign(distance=corner_distance(curve)).sort_values("distance")
    for _, rival in nearest[nearest["impl"] != best["impl"]].groupby("impl").head(1).iterrows():
        verdicts = [_beyond_noise(best, rival, column) for column in (X, Y)]
        if min(verdicts) < 0 or max(verdicts) < 1:
            return None
    return best


def frontier(curve: pd.DataFrame, runs: list[str]) -> Figure:
    """Checkout rate against dashboard rate, from zero, each point with its 95% intervals; the
    Pareto frontier of the point estimates, and the point nearest the corner of the best rates
    circled only when it is better beyond noise (`clear_best`). A single load level is drawn
    as the two rates side by side."""
    if curve.empty:
        return _empty("Throughput frontier", runs, "no measured points")
    levels = _levels(curve)
    if len(levels) == 1:
        fig, axes = plt.subplots(1, 2, figsize=(8, 4))
        for ax, (column, unit) in zip(
            axes, ((Y, "checkouts per second"), (X, "dashboard queries per second")), strict=True
        ):
            _single_level(ax, curve, column, unit)
        return _finish(
            fig, f"Throughput at a single load level: {levels[0]:g} analysts (no frontier)", runs
        )
    fig, ax = plt.subplots(figsize=(7.5, 4.8))
    for impl in _impls(curve):
        group = curve[curve["impl"] == impl].sort_values(X)
        ax.errorbar(
            group[X],
            group[Y],
            xerr=_interval(group, X),
            yerr=_interval(group, Y),
            marker="o",
            color=colour(impl),
            label=impl,
            alpha=0.8,
            capsize=2,
            lw=1,
        )
    front = pareto(curve)
    ax.plot(front[X], front[Y], color="black", linestyle=":", label="frontier (point estimates)")
    best = clear_best(curve)
    if best is None:
        ax.plot([], [], " ", label="no point nearest the corner beyond noise")
    else:
        ax.scatter(
            [best[X]],
            [best[Y]],
            s=180,
            facecolors="none",
            edgecolors="black",
            label=f"nearest the corner beyond noise: {best['impl']}",
        )
    right, top = (curve.get(f"{c}_hi", curve[c]).max() for c in (X, Y))
    ax.set_xlim(-0.02 * right, right * 1.08)  # from zero, with room for a point at 0
    ax.set_ylim(0, top * 1.12)
    ax.set_xlabel("dashboard queries per second")
    ax.set_ylabel("checkouts per second")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="lower left")
    return _finish(fig, "Throughput frontier: checkout rate against dashboard rate", runs)


def waits_over_time(
    waits: pd.DataFrame,
    runs: list[str],
    measure_s: tuple[float, float] | None = None,
    analysts: pd.DataFrame | None = None,
) -> Figure:
    """Average sessions per wait type over time, one panel per run, architecture and server,
    what is outside the measure phase shaded; one legend for all panels."""
    if waits.empty:
        return _empty("Wait events over time", runs, "no active-session samples")
    panels = [(one, server) for one in _series(waits) for server in one.rows["server"].unique()]
    types = list(dict.fromkeys(waits["wait_event_type"]))
    fig, axes = plt.subplots(
        len(panels), 1, figsize=(8.5, 1.9 * len(panels) + 1.2), squeeze=False, sharex=True
    )
    for ax, (one, server) in zip(axes[:, 0], panels, strict=True):
        part = one.rows[one.rows["server"] == server]
        wide = part.pivot_table(
            index="elapsed_s",
            columns="wait_event_type",
            values="sessions",
            aggfunc="mean",
            fill_value=0,
        ).reindex(columns=types, fill_value=0)
        ax.stackplot(
            wide.index,
            wide.T.to_numpy(),
            labels=types,
            colors=[WAIT_COLORS.get(c, "tab:gray") for c in types],
            step="post",
        )
        ax.set_ylim(bottom=0)
        ax.set_title(f"{one.label}, {server} server", fontsize=9)
        ax.set_ylabel("sessions")
        ax.grid(alpha=0.3, axis="y")
    for ax in axes[:, 0]:  # once every panel is drawn: the x range is the shared one
        _phases(ax, measure_s, analysts)
    axes[-1, 0].set_xlabel(_elapsed_label(measure_s))
    return _finish(
        fig,
        f"Active sessions by wait type (pg_stat_activity sampled at {ACTIVITY_HZ} Hz)",
        runs,
        axes[0, 0],
    )


def lock_wait_seconds(table: pd.DataFrame, runs: list[str]) -> Figure:
    """Lock-wait session-seconds per architecture and server over the measure phase, estimated
    from samples: each bar says how many samples it rests on."""
    if table.empty:
        return _empty("Lock-wait seconds", runs, "no samples")
    wide = _by_label(table, "server", "lock_wait_s")
    fig, ax = plt.subplots(figsize=(7, 4))
    series = [
        Series(f"{server} server", None, wide[[server]].rename(columns={server: "s"}))
        for server in wide.columns
    ]
    containers = _bars(ax, list(wide.index), series, "s")
    ax.tick_params(axis="x", labelsize=10 if table["run"].nunique() == 1 else 7)
    for container, one in zip(containers, series, strict=True):
        samples = (one.rows["s"] * ACTIVITY_HZ).round().astype(int)
        ax.bar_label(
            container,
            labels=[f"{n} sample{'s' * (n != 1)}" for n in samples],
            fontsize=7,
            padding=2,
        )
    most = int(round(wide.to_numpy().max() * ACTIVITY_HZ))
    ax.set_ylim(top=max(wide.to_numpy().max() * 1.25, FEW_SAMPLES / ACTIVITY_HZ))
    ax.set_ylabel(f"lock-wait session-seconds\n(1 sample = {1 / ACTIVITY_HZ:g} s)")
    ax.legend(fontsize=8, loc="upper left")
    if most < FEW_SAMPLES:
        ax.text(
            0.99,
            0.97,
            f"every bar rests on fewer than {FEW_SAMPLES} samples:\ntoo few to compare",
            transform=ax.transAxes,
            ha="right",
            va="top",
            fontsize=8,
            color="dimgray",
        )
    return _finish(fig, f"Lock waits from {ACTIVITY_HZ} Hz session sampling (measure phase)", runs)


SPREAD = 30  # p95s this many times apart: a CDF's x axis is logarithmic, or the low lines vanish


def distribution(cdf: pd.DataFrame, value: str, xlabel: str, title: str, runs: list[str]) -> Figure:
    """Empirical CDFs of `value` (lag or freshness), one line per architecture (its number of
    samples in the legend), from zero."""
    if cdf.empty:
        return _empty(
            title, runs, "no samples (no architecture whose answers lag, or no dashboard load)"
        )
    height = _cdf_height(cdf, 4)
    fig, ax = plt.subplots(figsize=(7, height))
    for one in _series(cdf):
        ax.step(
            one.rows[value],
            one.rows["fraction"],
            where="post",
            color=one.color,
            linestyle=one.linestyle,
            label=f"{one.label} (n = {len(one.rows):,})",
        )
    ax.set_xlim(left=0)
    highs = [one.rows[value].quantile(0.95) for one in _series(cdf)]
    spread = min(highs) > 0 and max(highs) / min(highs) >= SPREAD
    if spread:  # milliseconds beside seconds: each line where its values are
        ax.set_xscale("symlog", linthresh=1.0, linscale=0.3)
        xlabel += " (log scale above 1)"
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(xlabel)
    ax.set_ylabel("fraction ≤ value")
    ax.grid(alpha=0.3)
    _cdf_legend(ax, cdf, height, "best" if spread else "lower right")
    return _finish(fig, title, runs)


def lag_over_time(
    lag: pd.DataFrame,
    runs: list[str],
    measure_s: tuple[float, float] | None = None,
    analysts: pd.DataFrame | None = None,
) -> Figure:
    """The projection's backlog over time: events behind and age of the oldest unapplied one,
    from zero, the warm-up shaded."""
    if lag.empty:
        return _empty(
            "Read-side backlog over time", runs, "no lag samples (no projection or standby)"
        )
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(8.5, 5.2), sharex=True)
    for one in _series(lag):
        style = {"color": one.color, "linestyle": one.linestyle, "label": one.label}
        top.plot(one.rows["elapsed_s"], one.rows["events_behind"], **style)
        bottom.plot(one.rows["elapsed_s"], one.rows["oldest_unapplied_age_ms"].fillna(0), **style)
    top.set_ylabel("events behind")
    top.yaxis.set_major_locator(MaxNLocator(integer=True))
    bottom.set_ylabel("oldest unapplied (ms)")
    bottom.set_xlabel(_elapsed_label(measure_s))
    constant = ""
    for ax in (top, bottom):
        ax.set_ylim(bottom=0)
        constant = _phases(ax, measure_s, analysts)
        ax.grid(alpha=0.3)
    top.legend(fontsize=8, loc="upper left")
    title = "Read-side backlog over time (a projection's, a standby's)"
    return _finish(fig, title + (f", {constant}" if constant else ""), runs)


def cpu(table: pd.DataFrame, runs: list[str], totals: pd.DataFrame | None = None) -> Figure:
    """CPU cores per component (measure phase): per architecture, the system under test stacked
    (its total written on top: the evidence table's CPU cores, with the 95% interval from
    `totals` when given, i.e. resources.cpu_total) and, beside it, hatched, the load generator
    and the harness (OUTSIDE), which that total leaves out."""
    if table.empty:
        return _empty("CPU per component", runs, "no resource samples")
    wide = _by_label(table, "component", "cores")
    inside = wide[[c for c in wide.columns if c not in OUTSIDE]]
    outside = wide[[c for c in wide.columns if c in OUTSIDE]]
    fig, ax = plt.subplots(figsize=(8, 4.5))
    x = np.arange(len(wide))
    bottom = np.zeros(len(wide))
    for component in inside.columns:
        ax.bar(
            x - 0.17,
            inside[component],
            0.45,
            bottom=bottom,
            label=component,
            color=COMPONENT_COLORS.get(component, "black"),
        )
        bottom += inside[component].to_numpy()
    error = None
    if totals is not None and len(totals):
        bounds = _by_label(
            totals.melt(["run", "impl"], ["cores_lo", "cores_hi"]), "variable", "value"
        ).reindex(wide.index)
        error = np.nan_to_num(
            np.clip(np.vstack([bottom - bounds["cores_lo"], bounds["cores_hi"] - bottom]), 0, None)
        )
        ax.errorbar(x - 0.17, bottom, yerr=error, fmt="none", ecolor="black", capsize=4)
    above = bottom + (error[1] if error is not None else 0)
    for xi, total, y in zip(x, bottom, above, strict=True):
        ax.text(
            xi - 0.17, y, f"{total:.2f}", ha="center", va="bottom", fontsize=8, fontweight="bold"
        )
    stacked = np.zeros(len(wide))
    for component in outside.columns:
        ax.bar(
            x + 0.27,
            outside[component],
            0.2,
            bottom=stacked,
            color="white",
            edgecolor=COMPONENT_COLORS.get(component, "black"),
            hatch="///",
            label=f"{component} (hatched: not in the total)",
        )
        stacked += outside[component].to_numpy()
    ax.plot([], [], " ", label="on top: their total, as the table's\nCPU cores (95% interval)")
    ax.set_xticks(x, list(wide.index), fontsize=10 if table["run"].nunique() == 1 else 7)
    if len(x) > 4:  # the names would run into each other
        plt.setp(ax.get_xticklabels(), rotation=20, ha="right")
    ax.set_ylim(0, max(above.max(), stacked.max()) * 1.15)
    ax.set_ylabel("CPU cores (average, measure phase)")
    ax.grid(alpha=0.3, axis="y")
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1))
    return _finish(fig, "CPU per component (measure phase)", runs)


def bottlenecks(table: pd.DataFrame, runs: list[str], threshold: float) -> Figure:
    """Share of its CPU capacity each component used at each load level (bottlenecks.table), a
    panel per run and architecture: bars from zero with their 95% intervals, a dashed line at
    `threshold`, and the components at their limit marked with a triangle over their bar."""
    if table.empty:
        return _empty(
            "CPU against capacity per level",
            runs,
            "no capacity recorded (runs before results schema 5) or no resource samples",
        )
    panels = [(run, impl) for run in table["run"].unique() for impl in _impls(table)]
    panels = [p for p in panels if ((table["run"] == p[0]) & (table["impl"] == p[1])).any()]
    fig, axes = plt.subplots(
        1, len(panels), figsize=(max(6.0, 3.6 * len(panels)), 4.2), sharey=True, squeeze=False
    )
    top = max(1.1, float(table["share_hi"].max()) * 1.08)
    components = list(dict.fromkeys(table["component"]))  # in the table's order
    colours = {**COMPONENT_COLORS, "machine": "black"}
    several = table["run"].nunique() > 1
    for ax, (run, impl) in zip(axes[0], panels, strict=True):
        rows = table[(table["run"] == run) & (table["impl"] == impl)]
        levels = sorted(rows["analysts"].unique())
        mine = [c for c in components if c in set(rows["component"])]
        width = 0.8 / max(len(mine), 1)
        for k, component in enumerate(mine):
            part = rows[rows["component"] == component].set_index("analysts").reindex(levels)
            x = np.arange(len(levels)) + (k - (len(mine) - 1) / 2) * width
            ax.bar(
                x,
                part["share"],
                width,
                color="white" if component == "machine" else colours.get(component, "tab:blue"),
                edgecolor=colours.get(component, "tab:blue"),
                hatch="//" if component == "machine" else "",
                label=component,
            )
            ax.errorbar(
                x, part["share"], yerr=_interval(part, "share"), fmt="none", ecolor="black", lw=1
            )
            limit = (part["state"] == "at limit").to_numpy()
            mark = np.minimum(part["share_hi"].to_numpy() + 0.04, top * 0.97)
            ax.plot(x[limit], mark[limit], "kv", ms=6)
        ax.axhline(threshold, color="tab:red", ls="--", lw=1)
        ax.set_xticks(np.arange(len(levels)), [f"{a:g}" for a in levels])
        ax.set_xlabel("analysts running")
        ax.set_title(f"{impl}\n{run.rsplit('/', 1)[-1]}" if several else impl, fontsize=10)
        ax.set_ylim(0, top)
        ax.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:.0%}"))
        ax.grid(alpha=0.3, axis="y")
    axes[0][0].set_ylabel("CPU used / CPU capacity (measure phase)")
    handles: dict[str, object] = {}
    for ax in axes[0]:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            handles.setdefault(label, handle)
    handles["at its limit"] = Line2D([], [], color="black", marker="v", ls="none")
    handles[f"{threshold:.0%} of capacity"] = Line2D([], [], color="tab:red", ls="--")
    columns = min(len(handles), 5)
    fig.legend(
        list(handles.values()),
        list(handles),
        loc="lower center",
        ncol=columns,
        fontsize=8,
        frameon=False,
        bbox_to_anchor=(0.5, 0.12 / fig.get_figheight()),
    )
    fig.suptitle("CPU against each component's capacity, per load level")
    fig.text(0.01, 0.005, "runs: " + ", ".join(dict.fromkeys(runs)), fontsize=7, color="gray")
    below = 0.22 + 0.2 * math.ceil(len(handles) / columns)
    fig.tight_layout(rect=(0, below / fig.get_figheight(), 1, 1))
    return fig
