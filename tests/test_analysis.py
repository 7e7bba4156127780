"""Analysis functions against data with known answers (no database needed)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from harness.analysis import charts, frontier, interference, lag, latency  # noqa: E402
from harness.analysis.evidence import _storage as storage_of  # noqa: E402
from harness.analysis.html import markdown_to_html  # noqa: E402
from harness.runner.latency import new_histogram  # noqa: E402
from implementations import registry  # noqa: E402

T0 = pd.Timestamp("2026-01-01T00:00:00Z")


def _hist(values_ms: list[float]) -> str:
    hist = new_histogram()
    for value in values_ms:
        hist.record_value(int(value * 1000))
    return hist.encode().decode()


def _latency_rows(seconds: dict[int, list[float]]) -> pd.DataFrame:
    return pd.DataFrame(
        [
            {
                "run": "r",
                "impl": "crud",
                "operation": "checkout",
                "kind": "service",
                "second": T0 + pd.Timedelta(seconds=s),
                "elapsed_s": float(s),
                "phase": "measure",
                "count": len(v),
                "errors": 0,
                "hdr": _hist(v),
            }
            for s, v in seconds.items()
        ]
    )


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
    rows = pd.concat(
        [
            _latency_rows({0: [10]}).assign(operation="dashboard_revenue"),
            _latency_rows({0: [30]}).assign(operation="dashboard_top_products"),
        ]
    )
    table = latency.percentiles(latency.with_dashboard(rows))
    dash = table[table["operation"] == latency.DASHBOARD].iloc[0]
    assert dash["count"] == 2 and abs(dash["max_ms"] - 30) < 0.05


def _events(pairs: list[tuple[float, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "run": "r",
            "impl": "cqrs-logical",
            "source_commit": [T0 + pd.Timedelta(seconds=s) for s, _ in pairs],
            "applied_at": [T0 + pd.Timedelta(seconds=a) for _, a in pairs],
        }
    )


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
    stats = lag.freshness_stats(
        pd.DataFrame({"run": "r", "impl": "x", "freshness_ms": [0.0, 0.0, 10.0, 20.0]})
    )
    assert stats["stale_share"].iloc[0] == 0.5


def test_frontier_from_known_points() -> None:
    points = pd.DataFrame(
        {
            "impl": ["a", "b", "c", "d"],
            "dashboard_rate_per_s": [1.0, 4.0, 2.0, 4.0],
            "checkout_rate_per_s": [10.0, 5.0, 8.0, 9.0],
        }
    )
    front = frontier.pareto(points)
    assert list(front["impl"]) == ["a", "d"]  # c is beaten by d; b by d
    assert frontier.best_near_corner(points)["impl"] == "d"


def test_intervals_of_identical_seconds_collapse_to_the_value() -> None:
    # Every second alike: any resample of seconds gives the same p99 and the same rate.
    rows = _latency_rows({s: [5.0, 10.0, 20.0] for s in range(6)})
    low, high = interference.percentile_bounds(rows, 99)
    assert low == high and abs(high - 20) < 0.05
    assert interference.rate_bounds(rows, np.sort(rows["second"].unique())) == (3.0, 3.0)


def test_intervals_of_varying_seconds_hold_the_figure() -> None:
    rng = np.random.default_rng(2)
    rows = _latency_rows({s: list(rng.lognormal(2, 0.8, 30 + 10 * (s % 3))) for s in range(10)})
    value = latency.percentiles(rows).iloc[0]
    low, high = interference.percentile_bounds(rows, 90)
    assert low < value["p90_ms"] < high
    seconds = np.sort(rows["second"].unique())
    low, high = interference.rate_bounds(rows, seconds)
    assert low < value["rate_per_s"] < high
    # a second without a call counts 0: ten idle seconds move the rate's interval down
    idle = seconds.max() + pd.to_timedelta(np.arange(1, 11), unit="s")
    assert interference.rate_bounds(rows, np.append(seconds, idle))[1] < low


def _points(impls: list[str], rates: list[tuple[float, float]], half_width: float) -> pd.DataFrame:
    """A curve (interference.curve's columns) with rates ± half_width as intervals."""
    frame = pd.DataFrame(
        {
            "run": "r",
            "impl": impls,
            "analysts": 4.0,
            "seconds": 10,
            "dashboard_rate_per_s": [x for x, _ in rates],
            "checkout_rate_per_s": [y for _, y in rates],
            "checkout_p99_ms": 20.0,
            "checkout_p99_ms_lo": 15.0,
            "checkout_p99_ms_hi": 30.0,
        }
    )
    for column in ("dashboard_rate_per_s", "checkout_rate_per_s"):
        frame[f"{column}_lo"] = frame[column] - half_width
        frame[f"{column}_hi"] = frame[column] + half_width
    return frame


def test_frontier_marks_a_best_point_only_beyond_noise() -> None:
    # b is nearest the corner in both, by 0.03 q/s: within noise with wide intervals
    assert charts.clear_best(_points(["a", "b"], [(7.60, 35.0), (7.63, 35.0)], 1.0)) is None
    clear = charts.clear_best(_points(["a", "b"], [(4.0, 35.0), (8.0, 35.0)], 0.5))
    assert clear is not None and clear["impl"] == "b"
    # better on one rate beyond noise but worse beyond noise on the other: no best
    assert charts.clear_best(_points(["a", "b"], [(4.0, 40.0), (8.0, 30.0)], 0.5)) is None


def _texts(fig) -> str:
    return " ".join(
        [fig.get_suptitle()]
        + [t.get_text() for ax in fig.axes for t in [*ax.texts, ax.xaxis.label, ax.yaxis.label]]
    )


def test_single_load_level_draws_bars_not_a_curve() -> None:
    points = _points(["crud", "cqrs-logical"], [(7.6, 35.0), (7.8, 35.2)], 0.4)
    for fig in (charts.interference(points, ["r"]), charts.frontier(points, ["r"])):
        assert "single load level: 4 analysts" in fig.get_suptitle()
        for ax in fig.axes:
            drawn = [line for line in ax.get_lines() if line.get_linestyle() != "None"]
            assert not drawn and ax.get_ylim()[0] == 0  # bars from zero, no line (caps only)
            assert len(ax.patches) == 2 and ax.containers  # a bar each, with its interval
        plt.close(fig)


def test_curve_chart_from_zero_with_an_interval_per_point() -> None:
    points = pd.concat(
        [
            _points(["crud", "cqrs-logical"], [(1.0, 35.0), (1.1, 35.0)], 0.4),
            _points(["crud", "cqrs-logical"], [(7.6, 35.0), (7.8, 35.0)], 0.4).assign(analysts=8.0),
        ],
        ignore_index=True,
    )
    fig = charts.interference(points, ["r"])
    (ax,) = fig.axes
    assert ax.get_ylim()[0] == 0
    whiskers = [c for c in ax.containers if c.has_yerr]
    assert sum(len(c.lines[2][0].get_segments()) for c in whiskers) == 4
    plt.close(fig)
    fig = charts.frontier(points, ["r"])  # 0.2 q/s apart, intervals ± 0.4: nothing circled
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "no point nearest the corner beyond noise" in legend
    assert fig.axes[0].get_ylim()[0] == 0
    plt.close(fig)
    for column in ("dashboard_rate_per_s", "dashboard_rate_per_s_lo", "dashboard_rate_per_s_hi"):
        points.loc[points["impl"] == "crud", column] -= 3  # now beyond noise
    fig = charts.frontier(points, ["r"])
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "nearest the corner beyond noise: cqrs-logical" in legend
    plt.close(fig)


def test_lock_wait_bars_say_how_many_samples_they_rest_on() -> None:
    table = pd.DataFrame(
        {
            "run": "r",
            "impl": ["crud", "cqrs-logical"],
            "server": "write",
            "lock_wait_s": [0.1, 0.3],
            "blocked_samples": [1, 3],
        }
    )
    fig = charts.lock_wait_seconds(table, ["r"])
    text = _texts(fig)
    assert "1 sample " in text + " " and "3 samples" in text and "too few to compare" in text
    assert "1 sample = 0.1 s" in text
    plt.close(fig)


def test_over_time_says_a_constant_load_in_words_not_on_an_axis() -> None:
    points = pd.DataFrame(
        {"run": "r", "impl": "crud", "elapsed_s": np.arange(10.0), "count": 30, "value_ms": 20.0}
    )
    analysts = pd.DataFrame(
        {"run": "r", "impl": "crud", "elapsed_s": np.arange(10.0), "analysts": 2.0}
    )
    fig = charts.over_time(points, analysts, ["r"], measure_s=(3, 8))
    assert len(fig.axes) == 1 and "2 analysts throughout" in fig.get_suptitle()
    assert fig.axes[0].get_ylim()[0] == 0
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert "warm-up" in legend and "after the measure phase" in legend
    plt.close(fig)
    fig = charts.over_time(points, analysts.assign(analysts=np.repeat([0.0, 4.0], 5)), ["r"])
    assert len(fig.axes) == 1 and "4" in _texts(fig) and "throughout" not in fig.get_suptitle()
    plt.close(fig)


def test_cpu_chart_totals_the_components_the_table_totals() -> None:
    table = pd.DataFrame(
        {
            "run": "r",
            "impl": "crud",
            "component": ["write_server", "service", "locust", "runner"],
            "cpu_s": 1.0,
            "cores": [0.2, 0.3, 0.1, 0.05],
            "rss_mb": 1.0,
        }
    )
    totals = pd.DataFrame(
        {
            "run": ["r"],
            "impl": ["crud"],
            "cpu_s": [2.0],
            "cores": [0.5],
            "cores_lo": [0.45],
            "cores_hi": [0.55],
        }
    )
    fig = charts.cpu(table, ["r"], totals)
    assert "0.50" in _texts(fig)
    legend = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert "locust (hatched: not in the total)" in legend and "service" in legend
    plt.close(fig)


def test_markdown_to_html_embeds_local_images(tmp_path) -> None:
    fig = charts.lock_wait_seconds(pd.DataFrame(), ["r"])
    fig.savefig(tmp_path / "chart.png")
    plt.close(fig)
    page = markdown_to_html(
        "# Title\n\n## Part\n\n![chart](chart.png)\n\n*caption*\n\n"
        "| a | b |\n| --- | --- |\n| 1 | 2 |\n",
        tmp_path,
    )
    assert "<title>Title</title>" in page and "<h2>Part</h2>" in page
    assert 'src="data:image/png;base64,' in page and "chart.png" not in page
    assert "<table>" in page and "<em>caption</em>" in page and "http" not in page


def test_storage_leaves_out_the_dataset_tables_an_architecture_never_uses():
    baseline = registry.baseline()
    unused = registry.architecture(baseline).unused_tables
    assert unused  # the baseline keeps the dataset's outbox without using it
    rows = [
        ("r", baseline, "write", "", 240_000_000),
        ("r", baseline, "write", unused[0], 112_000_000),
        ("r", baseline, "write", "orders", 50_000_000),
        ("r", "gone-arch", "write", "", 300_000_000),  # not in the registry: counted whole
        ("r", "gone-arch", "write", unused[0], 112_000_000),
    ]
    sizes = pd.DataFrame(rows, columns=["run", "impl", "server", "relation", "bytes"])
    storage = storage_of(sizes).set_index("impl")["storage_mb"]
    assert storage.to_dict() == {baseline: 128.0, "gone-arch": 300.0}
