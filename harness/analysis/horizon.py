"""The xmin horizon and its cost (issue 16, item 4), from horizon.parquet (the session holding
the oldest snapshot of each run database, 2 Hz) and table_stats.parquet (pg_stat_user_tables
and relation sizes, every 2 s): how old the oldest transaction got and which component held
it, and what the hot tables paid for it (dead tuples, HOT updates, growth of table and indexes).
"""

from __future__ import annotations

import pandas as pd

from harness.analysis.load import in_measure, load_start

# The tables every checkout or projected order rewrites: the write model's products and the read
# models' per-product and per-minute aggregates (implementations/read_model/schema.sql), and the
# materialized views of the architecture that keeps its aggregates so. A run has those it has.
HOT_TABLES = (
    "products",
    "rm_products",
    "rm_category_sales_minute",
    "rm_product_sales_minute",
    "rm_revenue_minute",
    "mv_category_sales_minute",
    "mv_product_sales_minute",
    "mv_revenue_minute",
)


def with_elapsed(frame: pd.DataFrame, latency: pd.DataFrame) -> pd.DataFrame:
    """`frame` (with `ts`) with `elapsed_s`: seconds since its run's load started."""
    if frame.empty:
        return frame.assign(elapsed_s=pd.Series(dtype=float))
    joined = frame.merge(load_start(latency), on=["run", "impl"])
    elapsed = (joined["ts"] - joined["load_start"]).dt.total_seconds()
    return joined.drop(columns="load_start").assign(elapsed_s=elapsed)


def horizon_over_time(horizon: pd.DataFrame, latency: pd.DataFrame) -> pd.DataFrame:
    """The horizon samples with `elapsed_s` and `xact_age_s` (the holder's transaction age in
    seconds; 0 when no session held a snapshot, NaN for a walsender, which has no transaction)."""
    frame = with_elapsed(horizon, latency)
    held = frame["pid"].notna() if len(frame) else pd.Series(dtype=bool)
    return frame.assign(xact_age_s=(frame["xact_age_ms"] / 1000).where(held, 0.0))


def horizon_summary(horizon: pd.DataFrame, windows: pd.DataFrame) -> pd.DataFrame:
    """Per run, implementation and server, over the measure phase: the oldest transaction seen
    (`oldest_xact_s`) and who held it (`oldest_holder`), the oldest xmin in transactions
    (`max_xmin_age_xids`), and the component that held the horizon in most samples
    (`usual_holder`) with its share of the samples (`usual_share`)."""
    keys = ["run", "impl", "server"]
    columns = [
        *keys,
        "samples",
        "oldest_xact_s",
        "oldest_holder",
        "max_xmin_age_xids",
        "usual_holder",
        "usual_share",
    ]
    frame = in_measure(horizon, "ts", windows)
    frame = frame[frame["pid"].notna()]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    rows = []
    for key, group in frame.groupby(keys):
        ages = group["xact_age_ms"].fillna(-1)
        holders = group["component"].value_counts()
        rows.append(
            (
                *key,
                len(group),
                max(ages.max(), 0) / 1000,
                group.loc[ages.idxmax(), "component"],
                int(group["xmin_age_xids"].max()),
                holders.index[0],
                holders.iloc[0] / len(group),
            )
        )
    return pd.DataFrame(rows, columns=columns)


def table_stats_over_time(table_stats: pd.DataFrame, latency: pd.DataFrame) -> pd.DataFrame:
    """The hot tables' statistics samples with `elapsed_s`."""
    return with_elapsed(table_stats[table_stats["relation"].isin(HOT_TABLES)], latency)


def table_growth(table_stats: pd.DataFrame, windows: pd.DataFrame) -> pd.DataFrame:
    """Per run, implementation, server and hot table, from its first to its last sample of the
    measure phase: dead tuples at both ends and at most, updates and the share of them that were
    HOT (`hot_ratio`, NaN without updates), vacuums, and growth of the table and of its indexes
    in bytes."""
    keys = ["run", "impl", "server", "relation"]
    columns = [
        *keys,
        "dead_start",
        "dead_end",
        "dead_max",
        "updates",
        "hot_ratio",
        "vacuums",
        "table_growth_bytes",
        "index_growth_bytes",
    ]
    frame = in_measure(table_stats[table_stats["relation"].isin(HOT_TABLES)], "ts", windows)
    if frame.empty:
        return pd.DataFrame(columns=columns)
    ordered = frame.sort_values("ts").groupby(keys)
    first, last = ordered.first(), ordered.last()
    updates = last["updates"] - first["updates"]
    out = pd.DataFrame(
        {
            "dead_start": first["dead_tuples"],
            "dead_end": last["dead_tuples"],
            "dead_max": ordered["dead_tuples"].max(),
            "updates": updates,
            "hot_ratio": (last["hot_updates"] - first["hot_updates"]) / updates.where(updates > 0),
            "vacuums": last["vacuums"] - first["vacuums"],
            "table_growth_bytes": last["table_bytes"] - first["table_bytes"],
            "index_growth_bytes": last["index_bytes"] - first["index_bytes"],
        }
    )
    return out.reset_index()[columns]
