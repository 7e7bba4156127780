"""The decision record's findings, derived from the numbers (nothing here names a winner).

The interference curve gives, for each number of analysts, each architecture's checkout p99; the
architecture with the lowest is the best there, and a rival counts as beaten only when the
bootstrap interval of the difference (harness.analysis.compare) excludes 0. The costs (freshness,
CPU, lock waits) come from the evidence table.
"""

from __future__ import annotations

import math

import pandas as pd

from harness.analysis.compare import difference_interval, latency_sampler
from harness.analysis.interference import with_analysts
from harness.analysis.latency import headline_kind, measured
from harness.analysis.load import Run


def _ms(value: float) -> str:
    return "n/a" if value is None or math.isnan(value) else f"{value:.1f} ms"


def levels(runs: list[Run], block_s: float = 1.0) -> pd.DataFrame:
    """Per number of analysts (pooled over runs) and architecture: dashboard q/s, checkout p99,
    whether it is the lowest there, and whether every other architecture is beaten beyond
    noise (`clear`) or the lowest is within noise of it (`tied_with`)."""
    frame = measured(with_analysts(runs))
    frame = frame[(frame["kind"] == headline_kind(frame)) & frame["analysts"].notna()]
    rows = []
    for analysts, level in frame.groupby("analysts"):
        samplers, figures = {}, {}
        for impl, part in level.groupby("impl"):
            checkout = part[part["operation"] == "checkout"]
            if checkout["count"].sum() == 0:
                continue
            samplers[impl] = latency_sampler(checkout, 99, block_s, 0.0)
            seconds = part.groupby("run")["second"].nunique().sum()
            dash = part[part["operation"].str.startswith("dashboard_")]["count"].sum()
            figures[impl] = (samplers[impl].value(), dash / seconds)
        if not figures:
            continue
        best = min(figures, key=lambda i: figures[i][0])
        for impl, (p99, dash_rate) in figures.items():
            tied = impl != best and difference_interval(samplers[best], samplers[impl])[0] <= 0
            rows.append({"analysts": analysts, "impl": impl, "dashboard_rate_per_s": dash_rate,
                         "checkout_p99_ms": p99, "best": impl == best, "tied_with_best": tied})  # fmt: skip
    return pd.DataFrame(rows, columns=["analysts", "impl", "dashboard_rate_per_s",
                                       "checkout_p99_ms", "best", "tied_with_best"])  # fmt: skip


def _where(level_rows: pd.DataFrame, impl: str) -> list[str]:
    mine = level_rows[
        (level_rows["impl"] == impl) & (level_rows["best"] | level_rows["tied_with_best"])
    ]
    return [
        f"{a:.0f} analyst{'s' * (a != 1)} (~{r:.1f} dashboard q/s)"
        for a, r in zip(mine["analysts"], mine["dashboard_rate_per_s"], strict=True)
    ]


def findings(evidence: pd.DataFrame, level_rows: pd.DataFrame) -> list[str]:
    """Bullet points: latency under load, interference, freshness, CPU, lock waits."""
    out = []
    if len(level_rows):
        top = level_rows[level_rows["analysts"] == level_rows["analysts"].max()]
        best = top[top["best"]].iloc[0]
        rivals = []
        for row in top[~top["best"]].itertuples():
            noise = "within noise" if row.tied_with_best else "beyond noise"
            rivals.append(f"{row.impl} {_ms(row.checkout_p99_ms)} ({noise})")
        out.append(f"Under the highest dashboard load measured ({best.analysts:.0f} analysts, "
                   f"~{best.dashboard_rate_per_s:.1f} dashboard queries/s), **{best.impl}** had the "
                   f"lowest checkout p99: {_ms(best.checkout_p99_ms)}; "
                   + ", ".join(rivals) + ".")  # fmt: skip
        low = level_rows[level_rows["analysts"] == level_rows["analysts"].min()]
        if low["analysts"].iloc[0] != top["analysts"].iloc[0]:
            for impl in top["impl"]:
                a = low.loc[low["impl"] == impl, "checkout_p99_ms"]
                b = top.loc[top["impl"] == impl, "checkout_p99_ms"]
                if len(a) and len(b):
                    out.append(f"Interference, {impl}: checkout p99 {_ms(a.iloc[0])} at "
                               f"{low['analysts'].iloc[0]:.0f} analysts, {_ms(b.iloc[0])} at "
                               f"{top['analysts'].iloc[0]:.0f} ({b.iloc[0] - a.iloc[0]:+.1f} ms).")  # fmt: skip
    pooled = evidence.groupby("impl", sort=False).mean(numeric_only=True)
    for impl, row in pooled.iterrows():
        if not math.isnan(row.get("freshness_p95_ms", math.nan)):
            out.append(f"Freshness cost, {impl}: dashboards saw data {_ms(row['freshness_p95_ms'])} "
                       f"old at p95 and {_ms(row['freshness_p99_ms'])} at p99; events reached the "
                       f"read model in {_ms(row['lag_p99_ms'])} at p99; a shopper's own write "
                       f"became visible in {_ms(row['ryw_p99_ms'])} at p99.")  # fmt: skip
    if "crud" in pooled.index and not math.isnan(pooled.loc["crud", "cores"]):
        base = pooled.loc["crud", "cores"]
        for impl, row in pooled.drop(index="crud").iterrows():
            out.append(f"CPU cost, {impl}: {row['cores']:.2f} cores against crud's {base:.2f} "
                       f"({100 * (row['cores'] / base - 1):+.0f}%), at "
                       f"{row['checkout_rate_per_s']:.1f} checkouts/s.")  # fmt: skip
    waits = ", ".join(f"{i} {r['lock_wait_s']:.1f} s" for i, r in pooled.iterrows()
                      if not math.isnan(r["lock_wait_s"]))  # fmt: skip
    if waits:
        out.append(f"Lock waits over the measure phase (session-seconds): {waits}.")
    dash = pooled["dashboard_p99_ms"].dropna()
    if len(dash):
        out.append(
            f"Dashboard queries were fastest on {dash.idxmin()} "
            f"(p99 {_ms(dash.min())}; slowest {dash.idxmax()}, {_ms(dash.max())})."
        )
    return out


def conditions(evidence: pd.DataFrame, level_rows: pd.DataFrame) -> list[str]:
    """Under which measured conditions each architecture is the one to pick."""
    out = []
    pooled = evidence.groupby("impl", sort=False).mean(numeric_only=True)
    for impl in pooled.index:
        where = _where(level_rows, impl)
        cost = []
        if not math.isnan(pooled.loc[impl, "freshness_p95_ms"]):
            cost.append(f"dashboards {_ms(pooled.loc[impl, 'freshness_p95_ms'])} stale at p95")
        cheapest = pooled["cores"].idxmin() if pooled["cores"].notna().any() else None
        if cheapest is not None and impl != cheapest:
            cost.append(f"{pooled.loc[impl, 'cores'] - pooled.loc[cheapest, 'cores']:+.2f} CPU "
                        f"cores against {cheapest}")  # fmt: skip
        price = f"; it costs {', '.join(cost)}" if cost else "; no freshness cost"
        if where:
            out.append(f"**{impl}**: best or within noise of the best checkout p99 at "
                       f"{', '.join(where)}{price}.")  # fmt: skip
        else:
            out.append(f"**{impl}**: never the best checkout p99 at the loads measured{price}.")
    if len(level_rows) and level_rows["analysts"].nunique() == 1:
        out.append("One load level only: run a step shape or a sweep to see where the lines cross.")
    return out


def trade_offs(evidence: pd.DataFrame) -> list[str]:
    """What each CQRS option bought against crud and what it cost, in numbers."""
    pooled = evidence.groupby("impl", sort=False).mean(numeric_only=True)
    if "crud" not in pooled.index:
        return []
    base = pooled.loc["crud"]
    out = []
    for impl, row in pooled.drop(index="crud").iterrows():
        gain = base["peak_checkout_p99_ms"] - row["peak_checkout_p99_ms"]
        verb = "bought" if gain > 0 else "lost"
        out.append(f"{impl} {verb} {abs(gain):.1f} ms of checkout p99 under peak dashboard load "
                   f"and changed dashboard p99 by {row['dashboard_p99_ms'] - base['dashboard_p99_ms']:+.1f} ms, "
                   f"for freshness p95 {_ms(row['freshness_p95_ms'])}, read-your-writes p99 "
                   f"{_ms(row['ryw_p99_ms'])} and {row['cores'] - base['cores']:+.2f} CPU cores.")  # fmt: skip
    return out


__all__ = ["conditions", "findings", "levels", "trade_offs"]
