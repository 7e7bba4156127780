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

from harness.analysis import answer, charts, claims, contention, decision, lag, latency, resources
from harness.analysis.evidence import COST_COLUMNS, LATENCY_COLUMNS, evidence, markdown
from harness.analysis.html import markdown_to_html
from harness.analysis.interference import curve, percentile_bounds, with_analysts
from harness.analysis.load import Run, in_measure, load_runs, measure_windows, read
from harness.runner.latency import PERCENTILES

KEY_OPERATIONS = ["checkout", latency.DASHBOARD, "view_order", "search"]
DESCRIPTIONS = {
    "crud": "one normalized model; dashboards aggregate the live write tables",
    "cqrs-logical": "write model + outbox; a projector fills read tables in the same database",
    "cqrs-physical": "read tables on a second PostgreSQL server, filled by the projector",
}


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
    "curve further left is fresher. CQRS architectures only.",
    "event_lag_cdf": "Time from an event's commit to its projection into the read model; a curve "
    "further left is faster. CQRS architectures only.",
    "lag_over_time": "The projection's backlog over time: events not yet applied and the age of "
    "the oldest; a backlog that keeps growing means the projector cannot keep up.",
    "cpu": "Average cores each component kept busy over the measure phase; the number on each "
    "bar, with its 95% interval, is the CPU of the evidence table (system under test only).",
}


def _labels(runs: list[Run]) -> list[str]:
    return [r.label for r in runs]


def _measure_s(runs: list[Run]) -> tuple[float, float] | None:
    """The measure phase the runs share, in seconds since the load started (None when their
    warm-ups or durations differ)."""
    phases = {(r.warmup_s, r.warmup_s + r.duration_s) for r in runs}
    return phases.pop() if len(phases) == 1 else None


def _analysts(runs: list[Run], latency_rows: pd.DataFrame) -> pd.DataFrame:
    """Analysts per run, implementation and elapsed second, for the time-series charts."""
    frame = with_analysts(runs, latency_rows)[["run", "impl", "elapsed_s", "analysts"]]
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


def latency_charts(runs: list[Run]) -> dict[str, Figure]:
    frame = latency.with_dashboard(read(runs, "latency"))
    frame = frame[frame["kind"] == latency.headline_kind(frame)]
    measure = latency.measured(frame)
    ops = [op for op in KEY_OPERATIONS if op in set(measure["operation"])]
    checkout = frame[frame["operation"] == "checkout"]
    key = measure[measure["operation"].isin(ops)]
    table = _with_intervals(latency.percentiles(key), key)
    return {
        "latency_percentiles": charts.latency_percentiles(table, ops, _labels(runs)),
        "latency_cdf": charts.latency_cdf(latency.cdf(key), ops[:2], _labels(runs), table),
        "checkout_p99_over_time": charts.over_time(
            latency.over_time(checkout),
            _analysts(runs, checkout),
            _labels(runs),
            measure_s=_measure_s(runs),
        ),
    }


def interference_charts(runs: list[Run]) -> dict[str, Figure]:
    points = curve(runs)
    return {
        "interference": charts.interference(points, _labels(runs)),
        "frontier": charts.frontier(points, _labels(runs)),
    }


def contention_charts(runs: list[Run]) -> dict[str, Figure]:
    waits, windows, load = read(runs, "waits"), measure_windows(runs), read(runs, "latency")
    over_time = contention.waits_over_time(waits, load)
    checkout = load[load["operation"] == "checkout"]
    return {
        "waits_over_time": charts.waits_over_time(
            over_time, _labels(runs), _measure_s(runs), _analysts(runs, checkout)
        ),
        "lock_wait_seconds": charts.lock_wait_seconds(
            contention.lock_wait_seconds(waits, windows), _labels(runs)
        ),
    }


def lag_charts(runs: list[Run]) -> dict[str, Figure]:
    windows = measure_windows(runs)
    events = read(runs, "event_lag")
    events = events.assign(lag_ms=lag.event_lag_ms(events)) if len(events) else events
    fresh = in_measure(read(runs, "freshness"), "started_at", windows)
    return {
        "freshness_cdf": charts.distribution(
            lag.cdf(fresh, "freshness_ms"),
            "freshness_ms",
            "freshness seen by dashboard queries (ms)",
            "Freshness of dashboard answers (CDF)",
            _labels(runs),
        ),
        "event_lag_cdf": charts.distribution(
            lag.cdf(events, "lag_ms"),
            "lag_ms",
            "apply commit − source commit (ms)",
            "Projection time lag per event (CDF)",
            _labels(runs),
        ),
        "lag_over_time": charts.lag_over_time(read(runs, "lag"), _labels(runs), _measure_s(runs)),
    }


def cpu_charts(runs: list[Run]) -> dict[str, Figure]:
    samples, windows = read(runs, "resources"), measure_windows(runs)
    return {
        "cpu": charts.cpu(
            resources.cpu(samples, windows), _labels(runs), resources.cpu_total(samples, windows)
        )
    }


SECTIONS = (
    ("Latency", latency_charts),
    ("Interference and throughput", interference_charts),
    ("Lock contention", contention_charts),
    ("Projection lag and freshness", lag_charts),
    ("CPU", cpu_charts),
)


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


def decision_record(
    runs: list[Run], table: pd.DataFrame | None = None, found: answer.Answer | None = None
) -> str:
    """The decision record in Markdown: context, options, evidence, findings, trade-offs,
    conditions (`table`: the evidence table, `found`: the answer, computed when not given)."""
    table = evidence(runs) if table is None else table
    found = answer.answer(runs, table) if found is None else found
    impls = list(dict.fromkeys(table["impl"]))
    parts = [
        "## Decision record",
        "",
        "### Context",
        "",
        "Dashboard queries run on the same tables as checkout. Would CQRS fix checkout latency, "
        "and which kind, at what cost in freshness? Measured:",
        "",
        *_context(runs),
        "",
        "### Options measured",
        "",
        *[f"- **{i}**: {DESCRIPTIONS.get(i, '')}" for i in impls],
        "",
        "### Evidence",
        "",
        "Latency in ms over the measure phase; *(peak)* = the seconds with the most analysts.",
        "",
        markdown(table, LATENCY_COLUMNS),
        "",
        markdown(table, COST_COLUMNS),
        "",
        "Lag and freshness apply to the CQRS architectures only. Storage: the run's databases on "
        "every server once the load stopped (the same dataset for all; CQRS adds the outbox "
        "and the read models).",
        "",
        "### Findings",
        "",
        *[f"- {f}" for f in decision.findings(table, found)],
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


def write_report(run_dirs: list[str | Path], out_dir: str | Path | None = None) -> Path:
    """Write report.md and its PNG charts into `out_dir` (default: `report/` inside the run
    directory when there is one run, else `results/reports/<UTC time>`), and report.html, the
    same in one self-contained file; the path of report.md."""
    matplotlib.use("Agg")  # files only, never a window
    runs = load_runs(run_dirs)
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
    table = evidence(runs)
    found = answer.answer(runs, table)
    lines += ["## Answer", "", found.text, ""]
    for title, make in SECTIONS:
        lines += [f"## {title}", ""]
        for name, fig in make(runs).items():
            fig.savefig(out / f"{name}.png", dpi=110)
            plt.close(fig)
            lines += [f"![{name.replace('_', ' ')}]({name}.png)", ""]
            if name in CAPTIONS:
                lines += [f"*{CAPTIONS[name]}*", ""]
    lines += ["## Claims", "", claims.markdown(claims.claims(runs, found, table)), ""]
    lines.append(decision_record(runs, table, found))
    path = out / "report.md"
    text = "\n".join(lines) + "\n"
    path.write_text(text, encoding="utf-8")
    (out / "report.html").write_text(markdown_to_html(text, out), encoding="utf-8")
    return path
