"""`cqrs-bench bench load` and `bench dashboards`: what they measure is what they built, and they
leave nothing behind."""

from __future__ import annotations

import psycopg

from harness.bench import dashboards as bench_dashboards
from harness.bench import load as bench_load
from harness.postgres.servers import Servers
from workloads.dataset import generate

SF, SEED = 0.01, 77


def test_bench_load_measures_both_sides_and_leaves_nothing(servers: Servers) -> None:
    result = bench_load.run(servers.write_dsn, SF, SEED, rounds=1, progress=lambda _m: None)
    ours, pgbench = result.rounds
    assert (ours.side, ours.rows) == ("cqrs-bench", generate(SF, SEED).total_rows)
    assert (pgbench.side, result.pgbench_scale) == ("pgbench", 1)
    assert pgbench.rows == bench_load.PGBENCH_ROWS_PER_SCALE and pgbench.seconds > 0
    clones = {c.how: c for c in result.clones}
    assert set(clones) == {"FILE_COPY", "WAL_LOG", "run clone"}
    # WAL_LOG writes every block of the template to the WAL; FILE_COPY writes a few records.
    assert clones["WAL_LOG"].wal_bytes > result.template_bytes / 2 > clones["FILE_COPY"].wal_bytes
    text = bench_load.report(result)
    assert "pgbench -i -s 1" in text and f"ratio {result.ratio:.2f}" in text
    with psycopg.connect(servers.write_dsn) as conn:
        left = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'cqrsb\\_bench\\_%'"
        ).fetchall()
    assert left == []


def test_pgbench_scale_matches_the_row_count() -> None:
    assert bench_load.pgbench_scale(1) == 1
    assert bench_load.pgbench_scale(1_117_650) == 11
    assert bench_load.pgbench_scale(55_900_000) == 559


def test_bench_dashboards_times_every_query_and_window_and_drops_its_clone(
    servers: Servers,
) -> None:
    before = _databases(servers.write_dsn)
    timings = bench_dashboards.run(servers, "crud", [SF], SEED, repeat=1, progress=lambda _m: None)
    windows = bench_dashboards.windows()
    assert sorted((t.query, t.window_s) for t in timings) == sorted(
        (query, w) for query in bench_dashboards.QUERIES for w in windows
    )
    assert all(t.p50_ms > 0 for t in timings)
    assert any(t.rows > 0 for t in timings if t.window_s == max(windows))  # the history is there
    assert len(bench_dashboards.report(timings).splitlines()) == 1 + len(timings)
    assert {
        d for d in _databases(servers.write_dsn) - before if d.startswith("cqrsb_crud_")
    } == set()


def _databases(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        return {row[0] for row in conn.execute("SELECT datname FROM pg_database")}


def test_the_ratio_carries_the_spread_of_the_rounds() -> None:
    result = bench_load.LoadResult(1.0, 42, 11)
    for ours, theirs in ((2.0, 1.0), (2.0, 0.8), (1.6, 1.0)):  # ratios 0.5, 0.4, 0.625
        result.rounds.append(bench_load.Round("cqrs-bench", 1_000, ours, "", 4_000))
        result.rounds.append(bench_load.Round("pgbench", 1_000, theirs, "", 1_000))
    assert [round(r, 3) for r in result.round_ratios()] == [0.5, 0.4, 0.625]
    assert round(result.ratio, 3) == 0.5  # medians: 500 rows/s against 1,000
    text = bench_load.report(result)
    assert "ratio 0.50 (rounds from 0.40 to 0.62)" in text
    assert "ratio 2.00 (rounds from 1.60 to 2.50)" in text  # per byte
    result.rounds = result.rounds[:2]
    assert "one round: run --rounds 3 for its spread" in bench_load.report(result)
