"""The report: charts grouped by question, and `write_report`, the Markdown with its PNGs that ends
in a decision record. The notebooks call the same `*_charts` functions."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import matplotlib
import matplotlib.pyplot as plt
import pandas as pd
from matplotlib.figure import Figure

from harness.analysis import charts, contention, decision, lag, latency, resources
from harness.analysis.evidence import COST_COLUMNS, LATENCY_COLUMNS, evidence, markdown
from harness.analysis.interference import curve, with_analysts
from harness.analysis.load import Run, in_measure, load_runs, measure_windows, read

KEY_OPERATIONS = ["checkout", latency.DASHBOARD, "view_order", "search"]
DESCRIPTIONS = {
    "crud": "one normalized model; dashboards aggregate the live write tables",
    "cqrs-logical": "write model + outbox; a projector fills read tables in the same database",
    "cqrs-physical": "read tables on a second PostgreSQL server, filled by the projector",
}


def _labels(runs: list[Run]) -> list[str]:
    return [r.label for r in runs]


def latency_charts(runs: list[Run]) -> dict[str, Figure]:
    frame = latency.with_dashboard(read(runs, "latency"))
    frame = frame[frame["kind"] == latency.headline_kind(frame)]
    measure = latency.measured(frame)
    ops = [op for op in KEY_OPERATIONS if op in set(measure["operation"])]
    checkout = frame[frame["operation"] == "checkout"]
    analysts = with_analysts(runs, checkout)[["run", "elapsed_s", "analysts"]].drop_duplicates()
    return {
        "latency_percentiles": charts.latency_percentiles(latency.percentiles(measure), ops,
                                                          _labels(runs)),
        "latency_cdf": charts.latency_cdf(latency.cdf(measure), ops[:2], _labels(runs)),
        "checkout_p99_over_time": charts.over_time(latency.over_time(checkout), analysts.sort_values("elapsed_s"),
                                                   _labels(runs)),
    }  # fmt: skip


def interference_charts(runs: list[Run]) -> dict[str, Figure]:
    points = curve(runs)
    return {"interference": charts.interference(points, _labels(runs)),
            "frontier": charts.frontier(points, _labels(runs))}  # fmt: skip


def contention_charts(runs: list[Run]) -> dict[str, Figure]:
    waits, windows = read(runs, "waits"), measure_windows(runs)
    over_time = contention.waits_over_time(waits, read(runs, "latency"))
    return {"waits_over_time": charts.waits_over_time(over_time, _labels(runs)),
            "lock_wait_seconds": charts.lock_wait_seconds(
                contention.lock_wait_seconds(waits, windows), _labels(runs))}  # fmt: skip


def lag_charts(runs: list[Run]) -> dict[str, Figure]:
    windows = measure_windows(runs)
    events = read(runs, "event_lag")
    events = events.assign(lag_ms=lag.event_lag_ms(events)) if len(events) else events
    fresh = in_measure(read(runs, "freshness"), "started_at", windows)
    return {
        "freshness_cdf": charts.distribution(lag.cdf(fresh, "freshness_ms"), "freshness_ms",
                                             "freshness seen by dashboard queries (ms)",
                                             "Freshness of dashboard answers (CDF)", _labels(runs)),
        "event_lag_cdf": charts.distribution(lag.cdf(events, "lag_ms"), "lag_ms",
                                             "apply commit − source commit (ms)",
                                             "Projection time lag per event (CDF)", _labels(runs)),
        "lag_over_time": charts.lag_over_time(read(runs, "lag"), _labels(runs)),
    }  # fmt: skip


def cpu_charts(runs: list[Run]) -> dict[str, Figure]:
    table = resources.cpu(read(runs, "resources"), measure_windows(runs))
    return {"cpu": charts.cpu(table, _labels(runs))}


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
        lines.append(f"- `{run.label}` ({run.meta.get('status')}): mix `{c.get('mix')}`, shape "
                     f"`{c.get('shape')}`, {loop}, transport {c.get('transport')}, sf {c.get('sf')}, "
                     f"{c.get('warmup')} s warm-up + {c.get('duration')} s measured, on "
                     f"{machine.get('logical_cpus', '?')} CPUs ({machine.get('cpu_model', '?')}).")  # fmt: skip
    return lines


def decision_record(runs: list[Run], table: pd.DataFrame | None = None) -> str:
    """The decision record in Markdown: context, options, evidence, trade-offs, conditions."""
    table = evidence(runs) if table is None else table
    levels = decision.levels(runs)
    impls = list(dict.fromkeys(table["impl"]))
    parts = [
        "## Decision record", "",
        "### Context", "",
        "Dashboard queries run on the same tables as checkout. Would CQRS fix checkout latency, "
        "and which kind, at what cost in freshness? Measured:", "", *_context(runs), "",
        "### Options measured", "",
        *[f"- **{i}**: {DESCRIPTIONS.get(i, '')}" for i in impls], "",
        "### Evidence", "",
        "Latency in ms over the measure phase; *(peak)* = the seconds with the most analysts.", "",
        markdown(table, LATENCY_COLUMNS), "", markdown(table, COST_COLUMNS), "",
        "Lag and freshness apply to the CQRS architectures only. Storage: the run's databases on "
        "every server once the load stopped (the same dataset for all; CQRS adds the outbox "
        "and the read models).", "",
        "### Findings", "", *[f"- {f}" for f in decision.findings(table, levels)], "",
        "### Trade-offs", "", *[f"- {t}" for t in decision.trade_offs(table)], "",
        "### When each architecture wins", "",
        *[f"- {c}" for c in decision.conditions(table, levels)], "",
        "\"Within noise\": the 95% block-bootstrap interval of the difference in checkout p99 "
        "includes 0 (see `cqrs-bench compare --help`). Short runs on a shared machine are noisy: "
        "repeat a run and compare before acting on a small difference.",
    ]  # fmt: skip
    return "\n".join(parts)


def write_report(run_dirs: list[str | Path], out_dir: str | Path | None = None) -> Path:
    """Write report.md and its PNG charts into `out_dir` (default: `report/` inside the run
    directory when there is one run, else `results/reports/<UTC time>`); the report's path."""
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
        lines += [f"**Incomplete runs** (stopped early; not comparable as whole): "
                  f"{', '.join(incomplete)}", ""]  # fmt: skip
    for title, make in SECTIONS:
        lines += [f"## {title}", ""]
        for name, fig in make(runs).items():
            fig.savefig(out / f"{name}.png", dpi=110)
            plt.close(fig)
            lines += [f"![{name.replace('_', ' ')}]({name}.png)", ""]
    lines.append(decision_record(runs))
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path
