"""The decision record's findings, derived from the numbers (nothing here names a winner).

The levels are the answer's (harness/analysis/answer.py): per number of analysts running, each
architecture's checkout p99 with a 95% block-bootstrap interval. An architecture is "the lowest"
at a level only when every other one is higher beyond noise; otherwise the ones within noise of
the lowest are named together. The costs (freshness, storage, CPU) come from the evidence table.
"""

from __future__ import annotations

import math

import pandas as pd

from harness.analysis.answer import Answer, Level, difference, ms


def levels(answer: Answer) -> pd.DataFrame:
    """Per number of analysts and architecture: dashboard q/s, checkout p99, whether it is the
    lowest there (`best`) and whether it is within noise of the lowest (`tied_with_best`)."""
    rows = []
    for level in answer.levels:
        figures = {impl: s.value() for impl, s in level.checkout.items()}
        best = min(figures, key=figures.get)
        for impl, p99 in figures.items():
            tied = (
                impl != best
                and not difference(level.checkout[best], level.checkout[impl]).beyond_noise
            )
            rows.append(
                {
                    "analysts": level.analysts,
                    "impl": impl,
                    "dashboard_rate_per_s": level.dashboard_rate[impl],
                    "checkout_p99_ms": p99,
                    "best": impl == best,
                    "tied_with_best": tied,
                }
            )
    return pd.DataFrame(
        rows,
        columns=[
            "analysts",
            "impl",
            "dashboard_rate_per_s",
            "checkout_p99_ms",
            "best",
            "tied_with_best",
        ],
    )


def _leaders(level_rows: pd.DataFrame) -> str:
    names = list(level_rows[level_rows["best"] | level_rows["tied_with_best"]]["impl"])
    if len(names) == 1:
        return f"**{names[0]}** alone had the lowest checkout p99 (every other beyond noise)"
    return f"{', '.join(names)} had the lowest checkout p99, within noise of each other"


def findings(evidence: pd.DataFrame, answer: Answer) -> list[str]:
    """Bullet points: who led at each load, interference per architecture, freshness, storage."""
    out = []
    table = levels(answer)
    for analysts, rows in table.groupby("analysts"):
        level = next(lv for lv in answer.levels if lv.analysts == analysts)
        figures = ", ".join(f"{r.impl} {ms(r.checkout_p99_ms)}" for r in rows.itertuples())
        out.append(f"At {level.describe()}: {_leaders(rows)} ({figures}).")
    if answer.baseline is not None and answer.top is not answer.baseline:
        for impl, sampler in answer.top.checkout.items():
            if impl in answer.baseline.checkout:
                change = difference(answer.baseline.checkout[impl], sampler)
                out.append(
                    f"Interference, {impl}: checkout p99 {ms(change.a)} with no analysts, "
                    f"{ms(change.b)} at {answer.top.describe()}: "
                    + (
                        "a rise of "
                        if change.low > 0
                        else "a fall of "
                        if change.high < 0
                        else "within noise, "
                    )
                    + f"{change.value:+.1f} ms ({change.interval})."
                )
    pooled = evidence.groupby("impl", sort=False).mean(numeric_only=True)
    for impl, row in pooled.iterrows():
        if not math.isnan(row.get("freshness_p95_ms", math.nan)):
            out.append(
                f"Freshness cost, {impl}: dashboards saw data {ms(row['freshness_p95_ms'])} "
                f"old at p95 and {ms(row['freshness_p99_ms'])} at p99; "
                + (
                    ""
                    if math.isnan(row.get("lag_p99_ms", math.nan))
                    else f"commits reached the read side in {ms(row['lag_p99_ms'])} at p99; "
                )
                + f"a shopper's own write became visible in {ms(row['ryw_p99_ms'])} at p99."
            )
    if pooled["storage_mb"].notna().any():
        out.append(
            "Storage once the load stopped: "
            + ", ".join(
                f"{impl} {row['storage_mb']:.0f} MB"
                for impl, row in pooled.iterrows()
                if not math.isnan(row["storage_mb"])
            )
            + "."
        )
    return out


def _where(level_rows: pd.DataFrame, impl: str, answer: Answer) -> list[str]:
    mine = level_rows[
        (level_rows["impl"] == impl) & (level_rows["best"] | level_rows["tied_with_best"])
    ]
    found: dict[float, Level] = {lv.analysts: lv for lv in answer.levels}
    return [found[a].describe() for a in mine["analysts"]]


def conditions(evidence: pd.DataFrame, answer: Answer) -> list[str]:
    """Under which measured conditions each architecture is among the lowest checkout p99."""
    out = []
    table = levels(answer)
    pooled = evidence.groupby("impl", sort=False).mean(numeric_only=True)
    for impl in pooled.index:
        where = _where(table, impl, answer)
        cost = ""
        if not math.isnan(pooled.loc[impl, "freshness_p95_ms"]):
            cost = (
                f"; its dashboards read data {ms(pooled.loc[impl, 'freshness_p95_ms'])} old at p95"
            )
        if where:
            out.append(
                f"**{impl}**: the lowest checkout p99, or within noise of it, at "
                f"{', '.join(where)}{cost}."
            )
        elif not answer.levels:
            out.append(f"**{impl}**: not compared at any load level (no count of analysts){cost}.")
        else:
            out.append(
                f"**{impl}**: higher checkout p99 than the lowest, beyond noise, at every "
                f"load measured{cost}."
            )
    if len(answer.levels) == 1:
        out.append(
            "One load level only: run a step shape (the default `cqrs-bench run`) to see "
            "where the lines part."
        )
    return out


def trade_offs(evidence: pd.DataFrame, answer: Answer) -> list[str]:
    """What each architecture changed against the reference at the highest load, and its cost."""
    pooled = evidence.groupby("impl", sort=False).mean(numeric_only=True)
    ref = answer.reference
    out = []
    for impl, change in answer.versus.items():
        if impl not in pooled.index:
            continue
        row = pooled.loc[impl]
        fresh = row.get("freshness_p95_ms", math.nan)
        out.append(
            f"{impl}: checkout p99 at {answer.top.describe()} "
            f"{change.relative(ref + chr(39) + 's')}; for "
            + ("" if math.isnan(fresh) else f"freshness p95 {ms(fresh)}, ")
            + f"read-your-writes p99 {ms(row['ryw_p99_ms'])}"
            f" and {row['storage_mb']:.0f} MB of storage."
        )
    return out


__all__ = ["conditions", "findings", "levels", "trade_offs"]
