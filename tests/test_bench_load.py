"""`cqrs-bench bench load`: both sides build what they count, clones are measured, nothing is left."""

from __future__ import annotations

import psycopg

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
