"""Analysis functions against data with known answers (no database needed)."""

from __future__ import annotations

import numpy as np
import pandas as pd

from harness.analysis import frontier, lag, latency
from harness.runner.latency import new_histogram

T0 = pd.Timestamp("2026-01-01T00:00:00Z")


def _hist(values_ms: list[float]) -> str:
    hist = new_histogram()
    for value in values_ms:
        hist.record_value(int(value * 1000))
    return hist.encode().decode()


def _latency_rows(seconds: dict[int, list[float]]) -> pd.DataFrame:
    return pd.DataFrame([{"run": "r", "impl": "crud", "operation": "checkout", "kind": "service",
                          "second": T0 + pd.Timedelta(seconds=s), "elapsed_s": float(s),
                          "phase": "measure", "count": len(v), "errors": 0, "hdr": _hist(v)}
                         for s, v in seconds.items()])  # fmt: skip


def test_percentiles_merge_seconds_exactly() -> None:
    # 1..100 ms over two seconds: p50 is 50 ms, p99 99 ms, max 100 ms; a mean of the two
    # seconds' p99s (49.5 and 99.5) would say 74 ms.
    rows = _latency_rows({0: list(range(1, 51)), 1: list(range(51, 101))})
    table = latency.percentiles(rows)
    row = table.iloc[0]
    assert row["count"] == 100 and row["seconds"] == 2 and row["rate_per_s"] == 50
    assert abs(row["p50_ms"] - 50) < 0.05
    assert abs(row["p99_ms"] - 99) < 0.1
    assert abs(row["max_ms"] - 100) < 0.1


def test_bucket_percentile_matches_hdrhistogram() -> None:
    rng = np.random.default_rng(1)
    rows = _latency_rows({s: list(rng.lognormal(2, 1, 40)) for s in range(5)})
    merged = latency.merge(rows["hdr"])
    buckets = latency.Buckets(list(rows["hdr"]))
    for p in (50, 90, 99, 99.9, 100):
        expected = merged.get_value_at_percentile(p) / 1000
        assert latency.value_at_percentile(buckets.values_us, buckets.total(), p) == expected


def test_cdf_reaches_one_at_the_largest_value() -> None:
    table = latency.cdf(_latency_rows({0: [1, 2, 3, 4]}))
    assert list(table["fraction"]) == [0.25, 0.5, 0.75, 1.0]
    assert abs(table["latency_ms"].iloc[-1] - 4) < 0.01


def test_dashboard_operations_merge_under_one_name() -> None:
    rows = pd.concat([_latency_rows({0: [10]}).assign(operation="dashboard_revenue"),
                      _latency_rows({0: [30]}).assign(operation="dashboard_top_products")])  # fmt: skip
    table = latency.percentiles(latency.with_dashboard(rows))
    dash = table[table["operation"] == latency.DASHBOARD].iloc[0]
    assert dash["count"] == 2 and abs(dash["max_ms"] - 30) < 0.05


def _events(pairs: list[tuple[float, float]]) -> pd.DataFrame:
    return pd.DataFrame({"run": "r", "impl": "cqrs-logical",
                         "source_commit": [T0 + pd.Timedelta(seconds=s) for s, _ in pairs],
                         "applied_at": [T0 + pd.Timedelta(seconds=a) for _, a in pairs]})  # fmt: skip


def test_event_lag_from_timestamps() -> None:
    events = _events([(0, 0.010), (1, 1.020), (2, 2.030), (3, 3.040)])
    assert list(lag.event_lag_ms(events).round(3)) == [10, 20, 30, 40]
    stats = lag.event_lag_stats(events).iloc[0]
    assert stats["count"] == 4 and abs(stats["max_ms"] - 40) < 1e-6
    assert abs(stats["p50_ms"] - 25) < 1e-6


def test_freshness_is_age_of_oldest_unapplied_event() -> None:
    # Event A commits at 0 s, applied at 5 s; B commits at 1 s, applied at 2 s.
    events = _events([(0, 5), (1, 2)])
    starts = pd.Series([T0 + pd.Timedelta(seconds=s) for s in (-1, 0.5, 3, 6)])
    assert list(lag.freshness_at(starts, events)) == [0, 500, 3000, 0]
    stats = lag.freshness_stats(pd.DataFrame({"run": "r", "impl": "x",
                                              "freshness_ms": [0.0, 0.0, 10.0, 20.0]}))  # fmt: skip
    assert stats["stale_share"].iloc[0] == 0.5


def test_frontier_from_known_points() -> None:
    points = pd.DataFrame({"impl": ["a", "b", "c", "d"],
                           "dashboard_rate_per_s": [1.0, 4.0, 2.0, 4.0],
                           "checkout_rate_per_s": [10.0, 5.0, 8.0, 9.0]})  # fmt: skip
    front = frontier.pareto(points)
    assert list(front["impl"]) == ["a", "d"]  # c is beaten by d; b by d
    assert frontier.best_near_corner(points)["impl"] == "d"
