"""Dataset benchmarks: building a template (generate, COPY, freeze) and cloning one for a run.

The load builds a small template (sf LOAD_SF) under its own seed, dropped before each round and
at the end, so the session's dataset is never touched; the clone copies the session's template.
Row counts are checked afterwards; rows per second go into extra_info.
"""

from __future__ import annotations

import psycopg
from psycopg import sql

from harness.postgres.templates import (
    clone,
    database_dsn,
    drop_database,
    ensure_template,
    template_name,
)

LOAD_SF, LOAD_SEED = 0.01, 4242


def _noop(_message: str) -> None:
    pass


def _row_counts(dsn: str, tables) -> dict[str, int]:
    with psycopg.connect(dsn) as conn:
        return {
            t: conn.execute(
                sql.SQL("SELECT count(*) FROM {}").format(sql.Identifier(t))
            ).fetchone()[0]
            for t in tables
        }


def test_dataset_load(benchmark, bench_servers, dataset, rounds, per_second):
    seed = LOAD_SEED if (dataset.sf, dataset.seed) != (LOAD_SF, LOAD_SEED) else LOAD_SEED + 1
    write_dsn, name = bench_servers.write_dsn, template_name(LOAD_SF, seed)

    def setup():
        drop_database(write_dsn, name)
        return (write_dsn, LOAD_SF, seed), {"progress": _noop}

    benchmark.group = "dataset"
    try:
        info = benchmark.pedantic(ensure_template, setup=setup, rounds=rounds(3), iterations=1)
        assert info.built and info.name == name and info.total_rows > 0
        assert _row_counts(database_dsn(write_dsn, name), info.rows) == info.rows
    finally:
        drop_database(write_dsn, name)
    benchmark.extra_info.update(
        {
            "implementation": None,
            "operation": "dataset_load",
            "sf": LOAD_SF,
            "seed": seed,
            "rows": info.total_rows,
            "rows_per_second": per_second(benchmark, info.total_rows),
        }
    )


def test_dataset_clone(benchmark, bench_servers, dataset, rounds, per_second):
    write_dsn = bench_servers.write_dsn
    template = ensure_template(write_dsn, dataset.sf, dataset.seed, progress=_noop)
    names: list[str] = []

    def setup():
        if names:
            drop_database(write_dsn, names[-1])
        names.append(f"bench_clone_{len(names)}")
        return (write_dsn, template.name, names[-1]), {}

    benchmark.group = "dataset"
    try:
        dsn = benchmark.pedantic(clone, setup=setup, rounds=rounds(3), iterations=1)
        assert _row_counts(dsn, template.rows) == template.rows
    finally:
        drop_database(write_dsn, names[-1])
    benchmark.extra_info.update(
        {
            "implementation": None,
            "operation": "dataset_clone",
            "sf": dataset.sf,
            "seed": dataset.seed,
            "rows": template.total_rows,
            "rows_per_second": per_second(benchmark, template.total_rows),
        }
    )
