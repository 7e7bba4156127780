"""`cqrs-bench bench load`: building a dataset template next to `pgbench -i` on the same server,
and cloning the template with each of PostgreSQL's two strategies.

Rounds alternate: the (sf, seed) dataset built under a scratch name (drawn, rendered, COPYed,
indexed, foreign keys checked, analyzed: what `cqrs-bench load` does), then `pgbench -i` at the
scale whose row count is nearest (100,000 accounts rows per scale unit, plus its branches and
tellers), in a scratch database. Each side's rate is its rows over its whole time (pgbench's own
"done in" figure, which covers its generation, COPY, vacuum and primary keys), and the size of
the database it built over that time: pgbench's rows are four narrow columns, ours carry text
and the outbox's JSON, so rows per second alone flatters pgbench. Then the last
template is cloned with FILE_COPY and WAL_LOG, and once as a run clones it (FILE_COPY, then the
history shifted to end now). Everything made is dropped at the end, also on failure.
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from harness.bench.checkout import pgbench_binary
from harness.bench.clone import connect, value
from harness.bench.errors import BenchError
from harness.postgres import templates

Progress = Callable[[str], None]
PGBENCH_ROWS_PER_SCALE = 100_000 + 10 + 1  # accounts, tellers, branches
_DONE = re.compile(r"done in ([0-9.]+) s \(([^)]*)\)")


@dataclass
class Round:
    side: str  # "cqrs-bench" | "pgbench"
    rows: int
    seconds: float
    detail: str
    bytes: int = 0  # the database's size when built

    @property
    def rate(self) -> float:
        return self.rows / self.seconds

    @property
    def byte_rate(self) -> float:
        return self.bytes / self.seconds


@dataclass
class Clone:
    how: str
    seconds: float
    wal_bytes: int


@dataclass
class LoadResult:
    sf: float
    seed: int
    pgbench_scale: int
    template_bytes: int = 0
    rounds: list[Round] = field(default_factory=list)
    clones: list[Clone] = field(default_factory=list)

    def median_rate(self, side: str, of: str = "rate") -> float:
        return statistics.median(getattr(r, of) for r in self.rounds if r.side == side)

    @property
    def ratio(self) -> float:
        return self.median_rate("cqrs-bench") / self.median_rate("pgbench")

    def round_ratios(self, of: str = "rate") -> list[float]:
        """Each round's ratio (its build against the pgbench -i run beside it): their spread is
        the noise the median ratio carries."""
        ours = [getattr(r, of) for r in self.rounds if r.side == "cqrs-bench"]
        theirs = [getattr(r, of) for r in self.rounds if r.side == "pgbench"]
        return [a / b for a, b in zip(ours, theirs, strict=False)]

    @property
    def byte_ratio(self) -> float:
        return self.median_rate("cqrs-bench", "byte_rate") / self.median_rate(
            "pgbench", "byte_rate"
        )


def pgbench_scale(rows: int) -> int:
    """The `pgbench -i` scale whose row count is nearest `rows` (at least 1)."""
    return max(1, round(rows / PGBENCH_ROWS_PER_SCALE))


def run(
    write_dsn: str, sf: float, seed: int, rounds: int, progress: Progress = print
) -> LoadResult:
    """The measurement on the server at `write_dsn` (its maintenance database)."""
    suffix = f"{os.getpid()}"
    template, pgbench_db = f"cqrsb_bench_load_{suffix}", f"cqrsb_bench_pgbench_{suffix}"
    made = [template, pgbench_db]
    result = LoadResult(sf, seed, 0)
    try:
        for number in range(1, rounds + 1):
            templates.drop_database(write_dsn, template)
            progress(f"round {number}/{rounds}: cqrs-bench load --sf {sf:g} --seed {seed}")
            started = time.perf_counter()
            info = templates.build_scratch(write_dsn, template, sf, seed, progress=progress)
            built = Round(
                "cqrs-bench",
                info.total_rows,
                time.perf_counter() - started,
                f"draw {info.generate_seconds:.1f}s, load {info.copy_seconds:.1f}s",
                _size_of(write_dsn, template),
            )
            result.rounds.append(built)
            result.pgbench_scale = pgbench_scale(info.total_rows)
            progress(f"round {number}/{rounds}: pgbench -i -s {result.pgbench_scale}")
            result.rounds.append(_pgbench_init(write_dsn, pgbench_db, result.pgbench_scale))
        result.template_bytes = value(
            templates.database_dsn(write_dsn, template),
            "SELECT pg_database_size(current_database())",
        )
        result.clones = _clones(write_dsn, template, made, progress)
    finally:
        for name in made:
            templates.drop_database(write_dsn, name)
    return result


def _pgbench_init(write_dsn: str, database: str, scale: int) -> Round:
    """`pgbench -i -s scale` into a new database `database` (dropped first if there)."""
    templates.drop_database(write_dsn, database)
    templates.create_empty_database(write_dsn, database)
    command = [str(pgbench_binary()), "-i", "-q", "-s", str(scale)]
    command.append(templates.database_dsn(write_dsn, database))
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    found = _DONE.search(done.stderr)
    if done.returncode != 0 or not found:
        raise BenchError(f"pgbench -i failed (exit {done.returncode}): {done.stderr.strip()}")
    rows, seconds = scale * PGBENCH_ROWS_PER_SCALE, float(found.group(1))
    return Round("pgbench", rows, seconds, found.group(2), _size_of(write_dsn, database))


def _size_of(write_dsn: str, database: str) -> int:
    return value(write_dsn, "SELECT pg_database_size(%s)", (database,))


def _clones(write_dsn: str, template: str, made: list[str], progress: Progress) -> list[Clone]:
    clones = []
    for how in (*templates.STRATEGIES, "run clone"):
        name = f"{template}_{how.replace(' ', '_').lower()}"
        made.append(name)
        with connect(write_dsn) as conn:  # each starts from clean buffers (FILE_COPY checkpoints)
            conn.execute("CHECKPOINT")
            wal_before = conn.execute("SELECT pg_current_wal_insert_lsn()").fetchone()[0]
        started = time.perf_counter()
        if how == "run clone":
            templates.clone(write_dsn, template, name)
        else:
            templates.copy_database(write_dsn, template, name, strategy=how)
        seconds = time.perf_counter() - started
        with connect(write_dsn) as conn:
            wal = conn.execute(
                "SELECT pg_wal_lsn_diff(pg_current_wal_insert_lsn(), %s)", (wal_before,)
            ).fetchone()[0]
        clones.append(Clone(how, seconds, int(wal)))
        progress(f"clone ({how}): {seconds:.2f}s, {_size(int(wal))} of WAL")
        templates.drop_database(write_dsn, name)
    return clones


def _size(n: int) -> str:
    for unit in ("bytes", "kB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:,.0f} {unit}" if unit == "bytes" else f"{n:,.1f} {unit}"
        n /= 1024
    return ""


def report(result: LoadResult) -> str:
    lines = [
        f"dataset sf {result.sf:g} seed {result.seed} against pgbench -i -s {result.pgbench_scale}"
    ]
    for r in result.rounds:
        lines.append(
            f"  {r.side:<10} {r.rows:>12,} rows in {r.seconds:7.2f}s = {r.rate:>11,.0f} rows/s, "
            f"{r.byte_rate / 2**20:6.1f} MB/s of database  ({r.detail})"
        )
    ours, theirs = result.median_rate("cqrs-bench"), result.median_rate("pgbench")
    lines.append(
        f"median rows/s: cqrs-bench {ours:,.0f}, pgbench {theirs:,.0f}: ratio {result.ratio:.2f}"
        + _spread(result.round_ratios())
    )
    lines.append(
        f"median MB/s of database written: cqrs-bench "
        f"{result.median_rate('cqrs-bench', 'byte_rate') / 2**20:,.1f}, pgbench "
        f"{result.median_rate('pgbench', 'byte_rate') / 2**20:,.1f}: ratio {result.byte_ratio:.2f}"
        + _spread(result.round_ratios("byte_rate"))
    )
    lines.append(f"template on disk: {_size(result.template_bytes)}")
    for c in result.clones:
        lines.append(f"  clone by {c.how:<10} {c.seconds:6.2f}s  WAL written {_size(c.wal_bytes)}")
    return "\n".join(lines)


def _spread(ratios: list[float]) -> str:
    """The rounds' own ratios, lowest to highest (one round has no spread to show)."""
    if len(ratios) < 2:
        return " (one round: run --rounds 3 for its spread)"
    return f" (rounds from {min(ratios):.2f} to {max(ratios):.2f})"
