"""The report: charts grouped by question, and `write_report`, the Markdown with its PNGs (each with
a one-line caption) that ends in a decision record, and the same as one self-contained HTML file.
The notebooks call the same `*_charts` functions."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from harness.analysis import (
    answer,
    bottlenecks,
    charts,
    claims,
    contention,
    decision,
    horizon,
    lag,
    latency,
    resources,
    server_charts,
    server_time,
)
from harness.analysis.evidence import COST_COLUMNS, LATENCY_COLUMNS, evidence, markdown
from harness.analysis.html import markdown_to_html
from harness.analysis.interference import curve, percentile_bounds, with_analysts
from harness.analysis.load import Loaded, Run, in_measure, once
from harness.runner.latency import PERCENTILES
from implementations import registry

KEY_OPERATIONS = ["checkout", latency.DASHBOARD, "view_order", "search"]


def description(impl: str) -> str:
    """`impl`'s one-line description from its architecture.toml ("" if this tree lacks it)."""
    known = registry.architectures().get(impl)
    return known.description if known else ""


# One line under each chart: what it shows and how to read it.
CAPTIONS = {
    "latency_percentiles": "Each bar is a percentile of one architecture's calls over the measure "
    "phase, its whisker the 95% bootstrap interval over the run's seconds: bars whose "
    "whiskers overlap are not shown to differ.",
    "latency_cdf": "Share of calls (y) at most as slow as x; a curve further left is faster. "
    "n is the number of calls; with few calls the upper tail rests on a handful of them.",
    "checkout_p99_over_time": "Checkout p99 of each second (a second's p99 is close to its "
    "slowest call, so single spikes are noise); grey: not measured (warm-up, after the load), "
    "dotted lines: a new number of analysts.",
    "interference": "Checkout p99 at each number of analysts with its 95% bootstrap interval: "
    "a rise, or a gap between architectures, counts only where the intervals do not overlap.",
    "frontier": "Checkouts/s against dashboard queries/s, each with its 95% interval; up and to "
    "the right is better, and a point is circled only when it is better beyond those intervals.",
    "waits_over_time": "What active database sessions were doing, from samples of "
    "pg_stat_activity; red (Lock) is lock contention; grey: not measured (warm-up, after the "
    "load).",
    "lock_wait_seconds": "Time sessions spent waiting on locks, estimated from samples (the "
    "count is on each bar); a difference of a few samples is not a difference.",
    "freshness_cdf": "How old the data a dashboard query read was (0: fully up to date); a "
    "curve further left is fresher. Architectures whose answers lag only (a projection, a standby's "
    "replay, refreshed views).",
    "event_lag_cdf": "Time from a commit to its arrival on the read side (projected into the read "
    "model, or replayed by the standby); a curve further left is faster.",
    "lag_over_time": "The read side's backlog over time: events (or a standby's commits) not yet "
    "applied and the age of the oldest; a backlog that keeps growing means it cannot keep up.",
    "command_wait_shares": "Share of checkout's sessions' (the Shoppers' commands) sampled "
    "server time on CPU and in each kind of wait, per number of analysts; "
    "n is the samples a bar rests on (1 sample = 0.1 s of one session from the `activity` "
    "sampler, 0.01 s from `pg_wait_sampling`; the table below names the source): with few, a "
    "share moves by a sample's worth.",
    "horizon_over_time": "Top: how long the transaction holding the oldest snapshot of the "
    "write database had been open (0: none held one); bottom: the dead row versions of "
    "products, which VACUUM cannot remove while that snapshot may still see them.",
    "cpu": "Average cores each component kept busy over the measure phase; the number on each "
    "bar, with its 95% interval, is the CPU of the evidence table (system under test only).",
    "bottlenecks": "Each bar is the CPU a component used at one number of analysts over the CPU "
    "it could use (its capacity, from run.json), whisker the 95% interval over the level's "
    "seconds; a triangle marks a component at its limit (at the dashed line or above in at "
    "least three quarters of the seconds); hatched: the whole machine, other processes included.",
}


def _measure_s(runs: list[Run]) -> tuple[float, float] | None:
    """The measure phase the runs share, in seconds since the load started (None when their
    warm-ups or durations differ)."""
    phases = {(r.warmup_s, r.warmup_s + r.duration_s) for r in runs}
    return phases.pop() if len(phases) == 1 else None


def _analysts(data: Loaded, kind: str | None = None) -> pd.DataFrame:
    """Analysts per run, implementation and elapsed second of checkout (its rows of `kind` when
    given), for the time-series charts."""
    frame = with_analysts(data)
    frame = frame[frame["operation"] == "checkout"]
    if kind is not None:
        frame = frame[frame["kind"] == kind]
    frame = frame[["run", "impl", "elapsed_s", "analysts"]]
    return frame.drop_duplicates().sort_values("elapsed_s")


def _with_intervals(table: pd.DataFrame, measure: pd.DataFrame) -> pd.DataFrame:
    """The percentiles table with `<percentile>_lo`/`_hi`: each figure's 95% bootstrap interval
    over the seconds of its run (interference.percentile_bounds)."""
    bounds = []
    for (run, impl, op), rows in measure.groupby(["run", "impl", "operation"]):
        row = {"run": run, "impl": impl, "operation": op}
        for name, percentile in PERCENTILES.items():
            row[f"{name}_lo"], row[f"{name}_hi"] = percentile_bounds(rows, percentile)
        bounds.append(row)
    return table.merge(pd.DataFrame(bounds), on=["run", "impl", "operation"], how="left")


def latency_charts(data: Loaded) -> dict[str, Figure]:
    frame = latency.with_dashboard(data.table("latency"))
    kind = latency.headline_kind(frame)
    frame = frame[frame["kind"] == kind]
    measure = latency.measured(frame)
    ops = [op for op in KEY_OPERATIONS if op in set(measure["operation"])]
    checkout = frame[frame["operation"] == "checkout"]
    key = measure[measure["operation"].isin(ops)]
    table = _with_intervals(latency.percentiles(key), key)
    return {
        "latency_percentiles": charts.latency_percentiles(table, ops, data.labels),
        "latency_cdf": charts.latency_cdf(latency.cdf(key), ops[:2], data.labels, table),
        "checkout_p99_over_time": charts.over_time(
            latency.over_time(checkout),
            _analysts(data, kind),
            data.labels,
            measure_s=_measure_s(data.runs),
        ),
    }


def interference_charts(data: Loaded) -> dict[str, Figure]:
    points = curve(data)
    return {
        "interference": charts.interference(points, data.labels),
        "frontier": charts.frontier(points, data.labels),
    }


def contention_charts(data: Loaded) -> dict[str, Figure]:
    waits = data.table("waits")
    over_time = contention.waits_over_time(waits, data.table("latency"))
    return {
        "waits_over_time": charts.waits_over_time(
            over_time, data.labels, _measure_s(data.runs), _analysts(data)
        ),
        "lock_wait_seconds": charts.lock_wait_seconds(
            contention.lock_wait_seconds(waits, data.windows), data.labels
        ),
    }


def lag_charts(data: Loaded) -> dict[str, Figure]:
    events = data.table("event_lag")
    events = events.assign(lag_ms=lag.event_lag_ms(events)) if len(events) else events
    fresh = in_measure(data.table("freshness"), "started_at", data.windows)
    return {
        "freshness_cdf": charts.distribution(
            lag.cdf(fresh, "freshness_ms"),
            "freshness_ms",
            "freshness seen by dashboard queries (ms)",
            "Freshness of dashboard answers (CDF)",
            data.labels,
        ),
        "event_lag_cdf": charts.distribution(
            lag.cdf(events, "lag_ms"),
            "lag_ms",
            "arrival on the read side − commit on the write side (ms)",
            "Time lag per commit: projected, or replayed by a standby (CDF)",
            data.labels,
        ),
        "lag_over_time": charts.lag_over_time(
            data.table("lag"), data.labels, _measure_s(data.runs)
        ),
    }


def server_time_charts(data: Loaded) -> dict[str, Figure]:
    shares = command_shares(data)
    return {"command_wait_shares": server_charts.command_wait_shares(shares, data.labels)}


def horizon_charts(data: Loaded) -> dict[str, Figure]:
    latency_rows = data.table("latency")
    return {
        "horizon_over_time": server_charts.horizon_over_time(
            horizon.horizon_over_time(data.table("horizon"), latency_rows),
            horizon.table_stats_over_time(data.table("table_stats"), latency_rows),
            data.labels,
            _measure_s(data.runs),
            _analysts(data),
        )
    }


def _markdown_table(frame: pd.DataFrame, formats: dict[str, str]) -> str:
    """`frame` as a Markdown table, each column by its format in `formats` ('–' for a missing
    value); "" when it has no rows."""
    if frame.empty:
        return ""
    columns = list(formats)
    lines = ["| " + " | ".join(columns) + " |", "|" + " --- |" * len(columns)]
    for row in frame[columns].to_dict("records"):
        cells = ["–" if pd.isna(v) else formats[c].format(v) for c, v in row.items()]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def server_time_table(data: Loaded) -> str:
    """Checkout's sessions' shares as a table: percent per category, per level."""
    shares = command_shares(data)
    formats = {"impl": "{}", "analysts": "{:g}", "samples": "{:,}"}
    formats.update({c: "{:.1f}" for c in server_time.CATEGORIES})
    if len(set(data.labels)) > 1:
        formats = {"run": "{}", **formats}
    table = _markdown_table(server_time.wide(shares), formats)
    return (
        (
            table
            + "\n\nPercent of the level's samples; source of the samples: "
            + _wait_sampler(data)
        )
        if table
        else ""
    )


def _wait_samplers(data: Loaded) -> dict[tuple[str, str], str]:
    """(run, implementation) → the sampler its wait shares come from, as run.json records it
    (runs before results schema 4 had only the activity sampler)."""
    used = {}
    for run in data.runs:
        impls = run.meta.get("impls")
        if isinstance(impls, dict):
            for impl, info in impls.items():
                used[(run.label, impl)] = (info or {}).get("wait_sampler") or "activity"
    return used


@once
def command_shares(data: Loaded) -> pd.DataFrame:
    """server_time.command_shares of the runs, from the wait profile where run.json says
    `pg_wait_sampling`, else from the activity samples."""
    profile = data.table("wait_profile")
    chosen = [key for key, used in _wait_samplers(data).items() if used == "pg_wait_sampling"]
    keys = pd.MultiIndex.from_frame(profile[["run", "impl"]])
    profile = profile[keys.isin(chosen)] if chosen else profile.iloc[0:0]
    return server_time.command_shares(
        data.table("waits"), data.table("users"), data.windows, profile
    )


NOTES = {
    "activity": "`activity` (pg_stat_activity sampled at 10 Hz by the harness)",
    "pg_wait_sampling": (
        "`pg_wait_sampling` (the extension's in-server samples, 100 Hz per backend; idle "
        "Client/ClientRead waits left out, as the extension cannot tell them from waits between "
        "a transaction's statements)"
    ),
}


def _wait_sampler(data: Loaded) -> str:
    """Which sampler the wait shares come from, per implementation when they differ."""
    used = _wait_samplers(data)
    kinds = set(used.values()) or {"activity"}
    if len(kinds) == 1:
        return NOTES.get(kinds.pop(), "") + "."
    by_kind: dict[str, list[str]] = {}
    for (_run, impl), kind in sorted(used.items()):
        by_kind.setdefault(kind, []).append(impl)
    return (
        "; ".join(
            f"{NOTES.get(kind, kind)} for {', '.join(dict.fromkeys(impls))}"
            for kind, impls in sorted(by_kind.items())
        )
        + "."
    )


def horizon_table(data: Loaded) -> str:
    """The horizon's holders and the hot tables' growth over the measure phase, as tables."""
    several = len(set(data.labels)) > 1
    held = _markdown_table(
        horizon.horizon_summary(data.table("horizon"), data.windows),
        {
            **({"run": "{}"} if several else {}),
            "impl": "{}",
            "server": "{}",
            "oldest_xact_s": "{:.3f}",
            "oldest_holder": "{}",
            "max_xmin_age_xids": "{:,}",
            "usual_holder": "{}",
            "usual_share": "{:.0%}",
        },
    )
    grown = _markdown_table(
        horizon.table_growth(data.table("table_stats"), data.windows),
        {
            **({"run": "{}"} if several else {}),
            "impl": "{}",
            "relation": "{}",
            "dead_start": "{:,}",
            "dead_end": "{:,}",
            "dead_max": "{:,}",
            "updates": "{:,}",
            "hot_ratio": "{:.0%}",
            "vacuums": "{:,}",
            "table_growth_bytes": "{:,}",
            "index_growth_bytes": "{:,}",
        },
    )
    if not held and not grown:
        return "No horizon or table statistics samples (runs before results schema 4)."
    return "\n\n".join(
        part
        for part in (
            "Who held the oldest snapshot (measure phase): the oldest transaction seen and its "
            "holder, the oldest xmin in transactions, and the component that held it most often.",
            held,
            "The hot tables over the measure phase: dead tuples at its start, end and most, "
            "updates and the share of them that were HOT, vacuums, growth of table and indexes.",
            grown,
        )
        if part
    )


def cpu_charts(data: Loaded) -> dict[str, Figure]:
    samples, windows = data.table("resources"), data.windows
    return {
        "cpu": charts.cpu(
            resources.cpu(samples, windows), data.labels, resources.cpu_total(samples, windows)
        )
    }


def bottleneck_charts(data: Loaded) -> dict[str, Figure]:
    return {
        "bottlenecks": charts.bottlenecks(
            bottlenecks.table(data), data.labels, bottlenecks.THRESHOLD
        )
    }


def bottleneck_tables(data: Loaded) -> str:
    """Per run and architecture: each component's capacity, then a table of its share of it at
    each level, then every component at its limit in words."""
    found = bottlenecks.table(data)
    if found.empty:
        return (
            "No capacity recorded: runs before results schema 5 (or without collectors) cannot "
            "say which component was at its CPU limit."
        )
    rule = (
        f"A component is at its limit at a level when it used at least "
        f"{bottlenecks.THRESHOLD:.0%} of its capacity in at least "
        f"{bottlenecks.SECONDS_AT_LIMIT:.0%} of the level's seconds (**bold**; *italic*: near "
        "it, in half of them or within its mean's interval). Cells: the mean share of the "
        "capacity (95% interval), and the seconds at the limit out of those sampled. When the "
        "service or the load generator is at its limit, that level measured them, not the "
        "architecture; the machine at its limit (every core busy, other processes included) "
        "slows every component at once."
    )
    parts = [rule]
    runs = {run.label: run for run in data.runs}
    several = len(runs) > 1
    for run, impl in found[["run", "impl"]].drop_duplicates().itertuples(index=False):
        table = bottlenecks.wide(data, impl, run)
        formats = {column: "{}" for column in table.columns} | {"analysts": "{:g}"}
        head = f"**{impl}**" + (f" (`{run}`)" if several else "")
        quota = "; ".join(
            f"{component} limited to {q['cores']:g} cores, "
            + (bottlenecks.throttling(q) or "throttling not read")
            for component, q in (
                ((runs[run].meta.get("impls") or {}).get(impl) or {}).get("cpu_quota") or {}
            ).items()
        )
        parts += [
            f"{head}: capacity {bottlenecks.capacity_line(data, impl, run)}"
            + (f". CPU quota: {quota}." if quota else "."),
            _markdown_table(table, formats),
        ]
    named = bottlenecks.sentences(bottlenecks.findings(data), several)
    parts.append(
        "At its limit: " + " ".join(named)
        if named
        else "No component was at its limit at any level."
    )
    return "\n\n".join(parts)


SECTIONS = (
    ("Latency", latency_charts),
    ("Interference and throughput", interference_charts),
    ("Lock contention", contention_charts),
    ("Where checkout's server time goes", server_time_charts),
    ("The horizon and its cost", horizon_charts),
    ("Projection lag and freshness", lag_charts),
    ("CPU", cpu_charts),
    ("Bottlenecks", bottleneck_charts),
)


# Tables in Markdown under a section's charts.
SECTION_TABLES = {
    "Where checkout's server time goes": server_time_table,
    "The horizon and its cost": horizon_table,
    "Bottlenecks": bottleneck_tables,
}


def _context(runs: list[Run]) -> list[str]:
    lines = []
    for run in runs:
        c, machine = run.config, run.meta.get("machine") or {}
        loop = f"open loop, {c['arrival_rate']}/s" if c.get("arrival_rate") else "closed loop"
        lines.append(
            f"- `{run.label}` ({run.meta.get('status')}): mix `{c.get('mix')}`, shape "
            f"`{c.get('shape')}`, {loop}, transport {c.get('transport')}, sf {c.get('sf')}, "
            f"{c.get('warmup')} s warm-up + {c.get('duration')} s measured, on "
            f"{machine.get('logical_cpus', '?')} CPUs ({machine.get('cpu_model', '?')})."
        )
    return lines


def decision_record(data: Loaded) -> str:
    """The decision record in Markdown: context, options, evidence, findings, trade-offs,
    conditions."""
    table, found = evidence(data), answer.answer(data)
    impls = list(dict.fromkeys(table["impl"]))
    parts = [
        "## Decision record",
        "",
        "### Context",
        "",
        "Dashboard queries run on the same tables as checkout. Would CQRS fix checkout latency, "
        "and which kind, at what cost in freshness? Measured:",
        "",
        *_context(data.runs),
        "",
        "### Options measured",
        "",
        *[f"- **{i}**: {description(i)}" for i in impls],
        "",
        "### Evidence",
        "",
        "Latency in ms over the measure phase; *(peak)* = the seconds with the most analysts.",
        "",
        markdown(table, LATENCY_COLUMNS),
        "",
        markdown(table, COST_COLUMNS),
        "",
        "Lag: a commit's delay to the read side (a projection's, or a standby's replay). "
        "Freshness: the age of the data a dashboard read, for the architectures whose answers "
        "lag (also refreshed views); a read model updated in the command's transaction has "
        "none. Storage: the run's databases on every server once the load stopped (the same "
        "dataset for all; read models, an event log, views or a standby's copy add to it), "
        "less the dataset's tables an architecture keeps but never uses (its "
        "architecture.toml's `unused_tables`: the history's outbox where nothing reads it).",
        "",
        "### Findings",
        "",
        *[f"- {f}" for f in decision.findings(table, found)],
        *[f"- Bottleneck: {f}" for f in bottlenecks.flags(data)],
        "",
        "### Trade-offs",
        "",
        *[f"- {t}" for t in decision.trade_offs(table, found)],
        "",
        "### Where each architecture leads",
        "",
        *[f"- {c}" for c in decision.conditions(table, found)],
        "",
        '"Within noise": the 95% block-bootstrap interval of the difference includes 0 (see '
        "harness/analysis/answer.py). Short runs on a shared machine are noisy: repeat a run "
        "(`--repeat`) before acting on a small difference.",
    ]
    return "\n".join(parts)


def write_report(data: Loaded, out_dir: str | Path | None = None) -> Path:
    """Write report.md and its PNG charts of the runs of `data` into `out_dir` (default:
    `report/` inside the run directory when there is one run, else `results/reports/<UTC
    time>`), and report.html, the same in one self-contained file; the path of report.md."""
    matplotlib.use("Agg")  # files only, never a window
    runs = data.runs
    if out_dir is None:
        stamp = dt.datetime.now(dt.UTC).strftime("%Y%m%dT%H%M%SZ")
        out_dir = runs[0].path / "report" if len(runs) == 1 else Path("results/reports") / stamp
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    lines = ["# cqrs-bench report", "", "Runs: " + ", ".join(f"`{r.label}`" for r in runs), ""]
    incomplete = [r.label for r in runs if not r.complete]
    if incomplete:
        lines += [
            f"**Incomplete runs** (stopped early; not comparable as whole): "
            f"{', '.join(incomplete)}",
            "",
        ]
    lines += ["## Answer", "", answer.answer(data).text, ""]
    for title, make in SECTIONS:
        lines += [f"## {title}", ""]
        for name, fig in make(data).items():
            fig.savefig(out / f"{name}.png", dpi=110)
            plt.close(fig)
            lines += [f"![{name.replace('_', ' ')}]({name}.png)", ""]
            if name in CAPTIONS:
                lines += [f"*{CAPTIONS[name]}*", ""]
        if title in SECTION_TABLES and (text := SECTION_TABLES[title](data)):
            lines += [text, ""]
    lines += ["## Claims", "", claims.markdown(claims.claims(data)), ""]
    lines.append(decision_record(data))
    path = out / "report.md"
    text = "\n".join(lines) + "\n"
    path.write_text(text, encoding="utf-8")
    (out / "report.html").write_text(markdown_to_html(text, out), encoding="utf-8")
    return path
