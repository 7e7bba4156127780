"""The database a benchmark measures on: a fresh clone of a dataset, dropped afterwards (also on
Ctrl-C), and the benchmarks' own connections to it."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import psycopg

from harness.postgres import templates
from harness.postgres.servers import use_servers
from implementations.write_model import TRUTH_SEARCH_PATH

Progress = Callable[[str], None]


def connect(dsn: str, *, truth: bool = False) -> psycopg.Connection:
    """An autocommit connection named as the benchmarks' own (`cqrs-bench:bench`); with `truth`,
    its search path finds an architecture's write model whatever keeps it (TRUTH_SEARCH_PATH)."""
    options = f"-c search_path={TRUTH_SEARCH_PATH}" if truth else ""
    return psycopg.connect(
        dsn, autocommit=True, application_name="cqrs-bench:bench", options=options
    )


def value(dsn: str, query: str, params: tuple = ()):
    """The first column of the first row of `query`."""
    with connect(dsn) as conn:
        return conn.execute(query, params).fetchone()[0]


@contextmanager
def fresh_clone(
    write_dsn: str | None, sf: float, seed: int, prefix: str, progress: Progress
) -> Iterator[str]:
    """The DSN of a new clone `<prefix>_<random>` of the (sf, seed) dataset on the given write
    server (else on throwaway servers), dropped when the block ends."""
    with use_servers(write_dsn, None, announce=progress) as servers:
        template = templates.ensure_template(servers.write_dsn, sf, seed, progress=progress)
        name = f"{prefix}_{uuid.uuid4().hex[:12]}"
        try:
            started = time.perf_counter()
            dsn = templates.clone(servers.write_dsn, template.name, name)
            progress(f"cloned {template.name} into {name} in {time.perf_counter() - started:.1f}s")
            yield dsn
        finally:
            templates.drop_database(servers.write_dsn, name)


def dataset_of(dsn: str) -> tuple[float, int]:
    """(sf, seed) of the dataset clone at `dsn`, from its dataset_info."""
    with connect(dsn) as conn:
        info = dict(
            conn.execute(
                "SELECT key, value FROM dataset_info WHERE key IN ('sf', 'seed')"
            ).fetchall()
        )
    return float(info["sf"]), int(info["seed"])
