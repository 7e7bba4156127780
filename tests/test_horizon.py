"""The horizon and table statistics collectors on a real server, and the analyses of them and of
the command sessions' wait shares."""

from __future__ import annotations

import time

import pandas as pd
import psycopg

from harness.analysis import horizon as horizon_analysis
from harness.analysis import server_time
from harness.analysis.load import Loaded, load_run
from harness.collectors import horizon, table_stats
from tests.test_notebooks import SAMPLE


def test_horizon_names_the_component_holding_a_snapshot(contract_catalog) -> None:
    dsn = contract_catalog
    sampler = horizon.HorizonSampler({"write": dsn}, interval=0.1).start()
    holder = psycopg.connect(dsn, application_name="cqrs-bench:long-report")
    holder.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
    holder.execute("SELECT count(*) FROM products").fetchone()  # the snapshot, held
    held_from = pd.Timestamp.now(tz="UTC")
    with psycopg.connect(dsn, autocommit=True) as other:
        for _ in range(5):  # transactions begun after the snapshot: its xmin ages
            other.execute("SELECT pg_current_xact_id()")
    time.sleep(0.8)
    holder.rollback()
    holder.close()
    time.sleep(0.4)
    frame = sampler.stop()

    assert list(frame.columns) == list(horizon.COLUMNS)
    assert set(frame["server"]) == {"write"}
    during = frame[(frame["ts"] > held_from + pd.Timedelta(seconds=0.3)) & frame["pid"].notna()]
    assert len(during) >= 3
    assert set(during["component"]) == {"long-report"}
    assert set(during["state"]) == {"idle in transaction"}
    assert during["xmin_age_xids"].min() >= 5
    assert during["xact_age_ms"].max() >= 700
    assert frame["pid"].iloc[-1] is pd.NA  # released: nobody holds the horizon
    assert frame["component"].iloc[-1] == ""


def test_table_stats_count_dead_tuples_after_updates(contract_catalog) -> None:
    dsn = contract_catalog
    sampler = table_stats.TableStatsSampler({"write": dsn}, interval=0.2).start()
    time.sleep(0.3)
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT count(*) FROM products").fetchone()[0]
        for _ in range(3):
            conn.execute("UPDATE products SET stock = stock + 1")
        conn.execute("SELECT pg_stat_force_next_flush()")
    time.sleep(0.6)  # sampled after the flush
    frame = sampler.stop()

    assert list(frame.columns) == list(table_stats.COLUMNS)
    products = frame[frame["relation"] == "products"].sort_values("ts")
    first, last = products.iloc[0], products.iloc[-1]
    assert last["updates"] - first["updates"] == 3 * rows
    assert last["dead_tuples"] - first["dead_tuples"] == 3 * rows
    assert 0 <= last["hot_updates"] - first["hot_updates"] <= 3 * rows
    assert last["table_bytes"] > 0 and last["index_bytes"] > 0
    assert {"orders", "outbox"} <= set(frame["relation"])


def test_table_growth_over_the_measure_phase() -> None:
    ts = pd.Timestamp("2026-01-01", tz="UTC")
    sample = {"run": "r", "impl": "a", "server": "write", "relation": "products"}
    stats = pd.DataFrame(
        [
            {
                **sample,
                "ts": ts + pd.Timedelta(seconds=s),
                "dead_tuples": dead,
                "updates": upd,
                "hot_updates": hot,
                "vacuums": 0,
                "table_bytes": size,
                "index_bytes": 100,
            }
            for s, dead, upd, hot, size in (
                (0, 0, 0, 0, 8192),  # warm-up: left out
                (10, 5, 10, 4, 8192),
                (20, 40, 50, 24, 16384),
                (30, 30, 110, 52, 16384),
            )
        ]
    )
    windows = pd.DataFrame(
        [
            {
                "run": "r",
                "impl": "a",
                "measure_start": ts + pd.Timedelta(seconds=5),
                "measure_end": ts + pd.Timedelta(seconds=35),
            }
        ]
    )
    row = horizon_analysis.table_growth(stats, windows).iloc[0]
    assert (row["dead_start"], row["dead_end"], row["dead_max"]) == (5, 30, 40)
    assert row["updates"] == 100 and row["hot_ratio"] == 0.48
    assert row["table_growth_bytes"] == 8192 and row["index_growth_bytes"] == 0


def test_command_wait_shares_of_the_sample_run() -> None:
    data = Loaded([load_run(SAMPLE)])
    waits, users = data.table("waits"), data.table("users")
    shares = server_time.command_shares(waits, users, data.windows)

    assert set(shares["category"]) == set(server_time.CATEGORIES)
    sums = shares.groupby(server_time.KEYS)["share"].sum()
    assert (abs(sums - 1) < 1e-9).all()
    assert set(shares["impl"]) == set(data.runs[0].impls)
    # recomputed by hand for one architecture and level: the measured command samples in the
    # seconds that ran that many analysts
    impl, level = shares.iloc[0]["impl"], shares.iloc[0]["analysts"]
    measured = waits.merge(data.windows, on=["run", "impl"])
    measured = measured[
        (measured["impl"] == impl)
        & measured["component"].str.endswith(":commands")
        & (measured["ts"] >= measured["measure_start"])
        & (measured["ts"] < measured["measure_end"])
    ]
    seconds = users[(users["impl"] == impl) & (users["user_class"] == "Analyst")]
    at_level = set(seconds.loc[seconds["users"] == level, "second"])
    mine = measured[measured["ts"].dt.floor("s").isin(at_level)]
    expected = (mine["wait_event_type"] == "IO").mean()
    got = shares[(shares["impl"] == impl) & (shares["analysts"] == level)]
    assert got.set_index("category").loc["IO", "share"] == expected
    assert got["level_samples"].iloc[0] == len(mine) > 0
    table = server_time.wide(shares)
    assert list(table.columns) == [*server_time.KEYS, "samples", *server_time.CATEGORIES]
