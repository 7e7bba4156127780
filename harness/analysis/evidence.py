"""The evidence table: one row per run and architecture, the numbers the decision rests on.

Latency is over the measure phase, in the run's headline kind (intended in open loop, else
service). "Under load" figures are over the seconds with the most analysts the run's shape
asked for (all of the measure phase in a steady run).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.analysis import conflicts, contention, lag, resources
from harness.analysis.interference import curve
from harness.analysis.latency import headline_kind, measured, percentiles
from harness.analysis.load import Loaded, in_measure, once
from implementations import registry

# column -> (heading, format) for the report
COLUMNS = {
    "impl": ("architecture", "{}"),
    "checkout_rate_per_s": ("checkout/s", "{:.1f}"),
    "checkout_p50_ms": ("checkout p50 ms", "{:.1f}"),
    "checkout_p99_ms": ("checkout p99 ms", "{:.1f}"),
    "peak_analysts": ("analysts (peak)", "{:.0f}"),
    "peak_dashboard_rate_per_s": ("dashboard q/s (peak)", "{:.1f}"),
    "peak_checkout_p50_ms": ("checkout p50 ms (peak)", "{:.1f}"),
    "peak_checkout_p99_ms": ("checkout p99 ms (peak)", "{:.1f}"),
    "dashboard_p99_ms": ("dashboard p99 ms", "{:.1f}"),
    "lag_p95_ms": ("lag p95 ms", "{:.1f}"),
    "lag_p99_ms": ("lag p99 ms", "{:.1f}"),
    "freshness_p95_ms": ("freshness p95 ms", "{:.1f}"),
    "freshness_p99_ms": ("freshness p99 ms", "{:.1f}"),
    "ryw_p99_ms": ("read-your-writes p99 ms", "{:.1f}"),
    "lock_wait_s": ("lock wait s", "{:.1f}"),
    "deadlocks": ("deadlocks", "{:.0f}"),
    "conflicts_pct": ("checkout conflicts %", "{:.1f}"),
    "errors": ("errors", "{:.0f}"),
    "cores": ("CPU cores", "{:.2f}"),
    "storage_mb": ("storage MB", "{:.1f}"),
}


def _pick(table: pd.DataFrame, operation: str, column: str, rename: str) -> pd.DataFrame:
    rows = table[table["operation"] == operation]
    return rows[["run", "impl", column]].rename(columns={column: rename})


@once
def evidence(data: Loaded) -> pd.DataFrame:
    """One row per run and implementation; columns as in COLUMNS (NaN where not applicable)."""
    windows = data.windows
    latency = measured(data.table("latency"))
    kind = headline_kind(latency)
    dash = latency[latency["operation"].str.startswith("dashboard_")].assign(operation="dashboard")
    figures = percentiles(pd.concat([latency[latency["kind"] == kind], dash[dash["kind"] == kind]]))
    visibility = percentiles(latency[latency["kind"] == "visibility"].assign(operation="ryw"))
    table = windows[["run", "impl"]].copy()
    for part in (
        _pick(figures, "checkout", "rate_per_s", "checkout_rate_per_s"),
        _pick(figures, "checkout", "p50_ms", "checkout_p50_ms"),
        _pick(figures, "checkout", "p99_ms", "checkout_p99_ms"),
        _pick(figures, "dashboard", "p99_ms", "dashboard_p99_ms"),
        _pick(visibility, "ryw", "p99_ms", "ryw_p99_ms"),
        _peak(curve(data)),
        lag.event_lag_stats(data.table("event_lag"))[["run", "impl", "p95_ms", "p99_ms"]].rename(
            columns={"p95_ms": "lag_p95_ms", "p99_ms": "lag_p99_ms"}
        ),
        lag.freshness_stats(in_measure(data.table("freshness"), "started_at", windows))[
            ["run", "impl", "p95_ms", "p99_ms"]
        ].rename(columns={"p95_ms": "freshness_p95_ms", "p99_ms": "freshness_p99_ms"}),
        contention.lock_wait_seconds(data.table("waits"), windows)
        .groupby(["run", "impl"], as_index=False)["lock_wait_s"]
        .sum(),
        contention.counters(data.table("db_stats"), ("deadlocks",)),
        conflicts.overall(data),
        latency.groupby(["run", "impl"], as_index=False)["errors"].sum(),
        resources.cpu_total(data.table("resources"), windows)[["run", "impl", "cores"]],
    ):
        table = table.merge(part, on=["run", "impl"], how="left")
    table = table.merge(_storage(data.table("storage")), on=["run", "impl"], how="left")
    impls = dict.fromkeys(i for r in data.runs for i in r.impls)
    order = {impl: i for i, impl in enumerate(impls)}
    table = table.sort_values(
        ["run", "impl"], key=lambda s: s.map(order) if s.name == "impl" else s
    ).reset_index(drop=True)
    table = table.reindex(columns=["run", *COLUMNS])
    numeric = [c for c in COLUMNS if c != "impl"]
    table[numeric] = table[numeric].apply(pd.to_numeric, errors="coerce")  # empty parts: NaN
    return table


def _storage(sizes: pd.DataFrame) -> pd.DataFrame:
    """Per run and implementation, the size of its databases on every server, less the
    dataset's tables it keeps but never uses (its architecture's `unused_tables`), in MB."""
    if sizes.empty:
        return pd.DataFrame(columns=["run", "impl", "storage_mb"])
    keys = ["run", "impl"]
    whole = sizes[sizes["relation"] == ""].groupby(keys)["bytes"].sum()
    idle = sizes[[r in _unused(i) for i, r in zip(sizes["impl"], sizes["relation"], strict=True)]]
    total = whole.sub(idle.groupby(keys)["bytes"].sum(), fill_value=0).reset_index()
    return total.assign(storage_mb=total["bytes"] / 1e6)[["run", "impl", "storage_mb"]]


def _unused(impl: str) -> tuple[str, ...]:
    known = registry.architectures().get(impl)  # a run may name one that is gone
    return known.unused_tables if known else ()


def _peak(points: pd.DataFrame) -> pd.DataFrame:
    """Per run and implementation, the curve's point with the most analysts."""
    if points.empty or points["analysts"].isna().all():
        points = points.assign(analysts=np.nan)
    top = points.sort_values("analysts").groupby(["run", "impl"], as_index=False).tail(1)
    return top.rename(
        columns={
            "analysts": "peak_analysts",
            "dashboard_rate_per_s": "peak_dashboard_rate_per_s",
            "checkout_p50_ms": "peak_checkout_p50_ms",
            "checkout_p99_ms": "peak_checkout_p99_ms",
        }
    )[
        [
            "run",
            "impl",
            "peak_analysts",
            "peak_dashboard_rate_per_s",
            "peak_checkout_p50_ms",
            "peak_checkout_p99_ms",
        ]
    ]


LATENCY_COLUMNS = list(COLUMNS)[:9]
COST_COLUMNS = ["impl", *list(COLUMNS)[9:]]


def markdown(table: pd.DataFrame, columns: list[str] | None = None) -> str:
    """The evidence table (or its `columns`) as Markdown; '–' where a figure does not apply."""
    several = table["run"].nunique() > 1
    chosen = columns or list(COLUMNS)
    columns = (["run"] if several else []) + chosen
    head = ["run"] * several + [COLUMNS[c][0] for c in chosen]
    lines = ["| " + " | ".join(head) + " |", "|" + " --- |" * len(columns)]
    for row in table.to_dict("records"):
        cells = []
        for column in columns:
            value = row.get(column)
            fmt = COLUMNS.get(column, ("", "{}"))[1]
            missing = value is None or (isinstance(value, float) and np.isnan(value))
            cells.append("–" if missing else fmt.format(value))
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
