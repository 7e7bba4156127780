"""Dataset databases: a template per (schema, generator, sf, seed) built once with COPY, then cloned.

A template is built under a temporary name and renamed only when complete, so a database with a
template's name is always whole. Concurrent builds are serialized by an advisory lock on the
maintenance database (the one the write DSN names). A clone is a file copy of the template whose
timestamps are then shifted by whole minutes so that its history ends at the present.

A derived template (`ensure_derived_template`) is a template made from another by a build step,
for example an implementation's schema installed and its read models projected, so that runs
clone that work instead of repeating it. Its time columns (the write model's and the read
models', `SHIFTED_COLUMNS`, in whichever tables a database holds) are shifted with the clone.
"""

from __future__ import annotations

import json
import math
import os
import re
import threading
import time
import zlib
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo
from psycopg.copy import QueuedLibpqWriter

from implementations.read_model import TIME_COLUMNS as READ_MODEL_TIME_COLUMNS
from implementations.write_model import SCHEMA_VERSION, schema_sql
from workloads.dataset import GENERATOR_VERSION, TABLES, Dataset, generate, sf_text, validate

LOCK_NAMESPACE = 0x63717273  # "cqrs": the first key of our two-key advisory locks
IDENTITY_TABLES = ("customers", "products", "orders", "price_history")  # loaded with their ids
SHIFTED_COLUMNS = {  # (table, column): domain time, moved with the history; in tables present
    ("orders", "placed_at"),
    ("price_history", "changed_at"),
    ("customers", "created_at"),
    ("outbox", "occurred_at"),
    *READ_MODEL_TIME_COLUMNS,
}
PROTECTED = frozenset({"postgres", "template0", "template1"})
_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")

Progress = Callable[[str], None]


class DatasetError(RuntimeError):
    pass


@dataclass(frozen=True)
class TemplateInfo:
    name: str
    sf: float
    seed: int
    checksum: str
    rows: dict[str, int]
    built: bool  # False when the template already existed
    generate_seconds: float = 0.0
    copy_seconds: float = 0.0
    total_seconds: float = 0.0
    info: dict[str, str] = field(default_factory=dict)

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())


def template_name(sf: float, seed: int) -> str:
    """cqrsb_tpl_v{schema}_g{generator}_sf{sf, '.' as 'p'}_seed{seed}."""
    validate(sf, seed)
    spelled = sf_text(sf).replace(".", "p")
    return f"cqrsb_tpl_v{SCHEMA_VERSION}_g{GENERATOR_VERSION}_sf{spelled}_seed{seed}"


def database_dsn(dsn: str, dbname: str) -> str:
    """The same server and credentials as `dsn`, database `dbname` (URL stays URL)."""
    parts = urlsplit(dsn)
    if parts.scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        return urlunsplit(parts._replace(path="/" + quote(dbname, safe="")))
    return make_conninfo(dsn, dbname=dbname)


# --- connections --------------------------------------------------------------------------------


@contextmanager
def _connect(dsn: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(
        dsn, autocommit=True, application_name="cqrs-bench:datasets", options="-c timezone=UTC"
    ) as conn:
        yield conn


def _exists(admin: psycopg.Connection, name: str) -> bool:
    return (
        admin.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone()
        is not None
    )


@contextmanager
def _advisory_lock(admin: psycopg.Connection, name: str) -> Iterator[None]:
    key = zlib.crc32(name.encode()) - 2**31  # int4 range
    admin.execute("SELECT pg_advisory_lock(%s, %s)", (LOCK_NAMESPACE, key))
    try:
        yield
    finally:
        admin.execute("SELECT pg_advisory_unlock(%s, %s)", (LOCK_NAMESPACE, key))


def _check_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise DatasetError(
            f"database name {name!r} is not allowed: use 1 to 63 lower-case letters, digits and "
            "underscores, starting with a letter or underscore"
        )


# --- templates ----------------------------------------------------------------------------------


def ensure_template(
    write_dsn: str, sf: float, seed: int, *, progress: Progress = print, rebuild: bool = False
) -> TemplateInfo:
    """The template database for (sf, seed) on the write server, built now unless it exists."""
    name = template_name(sf, seed)
    with _connect(write_dsn) as admin, _advisory_lock(admin, name):
        if rebuild and _exists(admin, name):
            progress(f"dropping template {name} (--rebuild)")
            _drop(admin, name)
        if _exists(admin, name):
            info = _read_info(database_dsn(write_dsn, name))
            progress(f"template {name} exists: {sum(info[1].values()):,} rows, checksum {info[0]}")
            return TemplateInfo(name, sf, seed, info[0], info[1], built=False, info=info[2])
        _sweep_half_built(admin, name, progress)
        return _build(admin, write_dsn, name, sf, seed, progress)


def build_scratch(
    write_dsn: str, name: str, sf: float, seed: int, *, progress: Progress = print
) -> TemplateInfo:
    """Build the (sf, seed) dataset now as template `name`, whatever else exists (for benchmarks,
    which drop it afterwards). Refuses an existing name."""
    _check_name(name)
    with _connect(write_dsn) as admin:
        if _exists(admin, name):
            raise DatasetError(f"database {name!r} already exists; not building over it")
        return _build(admin, write_dsn, name, sf, seed, progress)


def _read_info(dsn: str) -> tuple[str, dict[str, int], dict[str, str]]:
    with _connect(dsn) as conn:
        info = dict(conn.execute("SELECT key, value FROM dataset_info").fetchall())
    if "checksum" not in info:
        raise DatasetError(f"{dsn}: dataset_info has no checksum; drop it and load again")
    return info["checksum"], json.loads(info["rows"]), info


def _sweep_half_built(admin: psycopg.Connection, name: str, progress: Progress) -> None:
    """Drop builds of this template left by a process that died (we hold the lock: none runs)."""
    pattern = name.replace("_", r"\_") + r"\_building\_%"
    rows = admin.execute("SELECT datname FROM pg_database WHERE datname LIKE %s", (pattern,))
    for (leftover,) in rows.fetchall():
        progress(f"dropping half-built {leftover}")
        _drop(admin, leftover)


def _build(
    admin: psycopg.Connection, write_dsn: str, name: str, sf: float, seed: int, progress: Progress
) -> TemplateInfo:
    started = time.perf_counter()
    progress(f"generating sf={sf_text(sf)} seed={seed} ...")
    building = f"{name}_building_{os.getpid()}"
    dsn = database_dsn(write_dsn, building)
    try:
        with ThreadPoolExecutor(1, thread_name_prefix="cqrs-bench-create") as pool:
            created = pool.submit(_create_bare, admin, dsn, building)  # while drawing
            try:
                dataset = generate(sf, seed)
            finally:
                detached = created.result()
        generated = time.perf_counter() - started
        progress(
            f"drew {_rate(dataset.total_rows, generated)}; rendered as COPY text while loading"
        )
        copied = _load(dsn, dataset, detached, progress)
        admin.execute(
            sql.SQL("ALTER DATABASE {} IS_TEMPLATE true").format(sql.Identifier(building))
        )
        rename = sql.SQL("ALTER DATABASE {} RENAME TO {}")
        admin.execute(rename.format(sql.Identifier(building), sql.Identifier(name)))
    except BaseException:
        _drop(admin, building)
        raise
    total = time.perf_counter() - started
    progress(f"template {name} ready in {total:.1f}s, checksum {dataset.checksum}")
    return TemplateInfo(
        name,
        sf,
        seed,
        dataset.checksum,
        dataset.rows,
        built=True,
        generate_seconds=generated,
        copy_seconds=copied,
        total_seconds=total,
        info=dataset.info(),
    )


def _rate(rows: int, seconds: float) -> str:
    return f"{rows:,} rows in {seconds:.1f}s ({rows / max(seconds, 1e-9):,.0f} rows/s)"


LOADERS = 2  # connections that COPY tables (and then build their indexes) at once
# COPY text bytes per row (sf 1, seed 42): the load starts the most bytes first, so both
# connections finish together (the outbox's JSON is 60% of the text; by rows it came third).
ROW_BYTES = {
    "customers": 70,
    "products": 63,
    "price_history": 59,
    "orders": 72,
    "order_lines": 20,
    "outbox": 193,
}


def _create_bare(admin: psycopg.Connection, dsn: str, name: str) -> _Detached:
    """The database with the schema's tables bare: the statements that add back their keys and
    indexes, and their foreign keys (`_detach_constraints`)."""
    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    with _connect(dsn) as conn, conn.transaction():
        conn.execute(schema_sql())
        return _detach_constraints(conn)


def _load(
    dsn: str,
    dataset: Dataset,
    detached: _Detached,
    progress: Progress,
) -> float:
    """COPY of every table into the bare schema, its indexes and constraints, identity sequences
    and statistics: the seconds it took.

    The tables are loaded in LOADERS connections at once, most bytes first: each table COPYed
    with FREEZE in a transaction that truncates it first, then its keys and indexes built and its
    statistics gathered, then each foreign key whose two tables are now loaded added, checked
    once, set-based (all while the other connection still copies)."""
    started = time.perf_counter()
    foreign_keys = list(detached.foreign_keys)
    by_size = sorted(TABLES, key=lambda table: -dataset.rows[table] * ROW_BYTES[table])
    loaded: set[str] = set()
    lock = threading.Lock()

    def load_table(table: str) -> None:
        _copy(dsn, dataset, table, progress)
        _index(dsn, table, detached.indexes.get(table, []))
        with lock:
            loaded.add(table)
            ready = [key for key in foreign_keys if {key.table, key.references} <= loaded]
            for key in ready:
                foreign_keys.remove(key)
        _add_foreign_keys(dsn, ready)

    _in_parallel(by_size, load_table)
    _add_foreign_keys(dsn, foreign_keys)  # any between tables the dataset does not fill
    with _connect(dsn) as conn:
        with conn.transaction():
            _finish_tables(conn, dataset)
        conn.execute("VACUUM (FREEZE, ANALYZE) dataset_info")  # the one table filled by INSERT
    seconds = time.perf_counter() - started
    progress(f"copied, indexed and keys checked: {_rate(dataset.total_rows, seconds)}")
    return seconds


@dataclass(frozen=True)
class _ForeignKey:
    table: str
    references: str
    add: sql.Composable


def _add_foreign_keys(dsn: str, keys: list[_ForeignKey]) -> None:
    if keys:
        with _connect(dsn) as conn:
            for key in keys:
                try:
                    conn.execute(key.add)
                except psycopg.errors.ForeignKeyViolation as e:
                    raise DatasetError(
                        f"generated rows of {key.table} break a foreign key: {e}"
                    ) from e


_CONSTRAINTS = """
SELECT c.conrelid::regclass::text, c.confrelid::regclass::text, c.conname, c.contype,
       pg_get_constraintdef(c.oid)
FROM pg_constraint c
WHERE c.contype IN ('p', 'u', 'f') AND c.connamespace = 'public'::regnamespace
ORDER BY c.contype = 'f' DESC, c.oid
"""
_INDEXES = """
SELECT i.tablename, i.indexname, i.indexdef FROM pg_indexes i
WHERE i.schemaname = 'public'
  AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)
ORDER BY i.indexname
"""


@dataclass(frozen=True)
class _Detached:
    indexes: dict[str, list[sql.Composable]]  # by table: its keys and indexes
    foreign_keys: list[_ForeignKey]


def _detach_constraints(conn: psycopg.Connection) -> _Detached:
    """Drop the schema's foreign keys, unique and primary keys and indexes; the statements that
    add them back: per table, its keys and indexes; and the foreign keys."""
    detached = _Detached({}, [])
    for table, references, name, kind, definition in conn.execute(_CONSTRAINTS).fetchall():
        conn.execute(
            sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                sql.Identifier(table), sql.Identifier(name)
            )
        )
        add = sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} {}").format(
            sql.Identifier(table), sql.Identifier(name), sql.SQL(definition)
        )
        if kind == "f":
            detached.foreign_keys.append(_ForeignKey(table, references, add))
        else:
            detached.indexes.setdefault(table, []).append(add)
    for table, name, definition in conn.execute(_INDEXES).fetchall():
        conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))
        detached.indexes.setdefault(table, []).append(sql.SQL(definition))
    return detached


def _index(dsn: str, table: str, indexes: list[sql.Composable]) -> None:
    """A loaded table's keys and indexes, one after another (a large one with parallel workers;
    side by side without them, the outbox's took longer at sf 10), then its statistics (COPY
    FREEZE left the rows frozen and all-visible: no vacuum)."""
    _run_all(dsn, [*indexes, sql.SQL("ANALYZE {}").format(sql.Identifier(table))])


def _in_parallel(tables: list[str], work: Callable[[str], None]) -> None:
    """work(table) for every table, LOADERS at once, in the order given; the first error is raised
    once all have stopped."""
    with ThreadPoolExecutor(LOADERS, thread_name_prefix="cqrs-bench-load") as pool:
        for future in [pool.submit(work, table) for table in tables]:
            future.result()


def _run_all(dsn: str, statements: list[sql.Composable]) -> None:
    if statements:
        with _connect(dsn) as conn:
            conn.execute("SET maintenance_work_mem = '512MB'")
            for statement in statements:
                conn.execute(statement)


def _copy(dsn: str, dataset: Dataset, table: str, progress: Progress) -> None:
    """The table's COPY text, rendered chunk by chunk as it is sent, FREEZE: the table is
    truncated in the same transaction, so its rows are written frozen and need no vacuum."""
    started = time.perf_counter()
    columns = sql.SQL(", ").join(map(sql.Identifier, TABLES[table]))
    statement = sql.SQL("COPY {} ({}) FROM STDIN WITH (FREEZE)").format(
        sql.Identifier(table), columns
    )
    with _connect(dsn) as conn, conn.transaction():
        conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(table)))
        cursor = conn.cursor()  # a queued writer sends while the next chunk is rendered
        with cursor.copy(statement, writer=QueuedLibpqWriter(cursor)) as copy:
            for chunk in dataset.chunks(table):
                copy.write(chunk)
    progress(
        f"  {table:<14} {dataset.rows[table]:>10,} rows  {time.perf_counter() - started:6.2f}s"
    )


def _finish_tables(conn: psycopg.Connection, dataset: Dataset) -> None:
    """Identity sequences past the loaded ids, and the dataset's description."""
    setval = (
        "SELECT setval(pg_get_serial_sequence(%s, 'id'), coalesce(max(id), 0) + 1, false) FROM {}"
    )
    for table in IDENTITY_TABLES:
        conn.execute(sql.SQL(setval).format(sql.Identifier(table)), (table,))
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO dataset_info (key, value) VALUES (%s, %s)", list(dataset.info().items())
        )


def ensure_derived_template(
    write_dsn: str,
    read_dsn: str | None,
    base: str,
    name: str,
    build: Callable[[str, str | None], None],
    *,
    progress: Progress = print,
) -> bool:
    """Template `name` on the write server (and an empty-based one of the same name on the read
    server, when `read_dsn` is given): a copy of template `base` (the read one starts empty)
    that `build(write_dsn, read_dsn)` completed, frozen and analyzed; built now unless both
    exist. True when it was built."""
    _check_name(name)
    with ExitStack() as stack:
        admin = stack.enter_context(_connect(write_dsn))
        stack.enter_context(_advisory_lock(admin, name))
        reader = stack.enter_context(_connect(read_dsn)) if read_dsn else None
        if _exists(admin, name) and (reader is None or _exists(reader, name)):
            return False
        for conn in (admin, reader):
            if conn is not None:
                _sweep_half_built(conn, name, progress)
                if _exists(conn, name):  # one side only: rebuild both
                    _drop(conn, name)
        building = f"{name}_building_{os.getpid()}"
        _copy_template(admin, base, building)
        try:
            if reader is not None:
                reader.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(building)))
            dsns = [database_dsn(write_dsn, building)]
            dsns.append(database_dsn(read_dsn, building) if read_dsn else None)
            build(*dsns)
            for conn, dsn in ((admin, dsns[0]), (reader, dsns[1])):
                if conn is None:
                    continue
                with _connect(dsn) as built:
                    built.execute("VACUUM (FREEZE, ANALYZE)")
                conn.execute(
                    sql.SQL("ALTER DATABASE {} IS_TEMPLATE true").format(sql.Identifier(building))
                )
                conn.execute(
                    sql.SQL("ALTER DATABASE {} RENAME TO {}").format(
                        sql.Identifier(building), sql.Identifier(name)
                    )
                )
        except BaseException:
            for conn in (admin, reader):
                if conn is not None:
                    for leftover in (building, name):
                        if _exists(conn, leftover):
                            _drop(conn, leftover)
            raise
    return True


# --- clones -------------------------------------------------------------------------------------


def copy_database(server_dsn: str, template: str, name: str, strategy: str = "FILE_COPY") -> str:
    """A copy of `template` as a new database `name` on the same server, history not moved; its
    DSN. Refuses to overwrite an existing database. FILE_COPY copies the files and checkpoints:
    on PostgreSQL 15 much faster for large templates than WAL_LOG, which writes every block to
    the WAL (`cqrs-bench bench load` measures both)."""
    _check_name(name)
    with _connect(server_dsn) as admin:
        if _exists(admin, name):
            raise DatasetError(
                f"database {name!r} already exists; clone will not overwrite it "
                "(drop it first or choose another name)"
            )
        if not _exists(admin, template):
            raise DatasetError(f"template {template!r} does not exist; run `cqrs-bench load`")
        _copy_template(admin, template, name, strategy)
    return database_dsn(server_dsn, name)


STRATEGIES = ("FILE_COPY", "WAL_LOG")


def _copy_template(
    admin: psycopg.Connection, template: str, name: str, strategy: str = "FILE_COPY"
) -> None:
    if strategy not in STRATEGIES:
        raise DatasetError(f"clone strategy must be one of {', '.join(STRATEGIES)}")
    statement = sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY {}").format(
        sql.Identifier(name), sql.Identifier(template), sql.SQL(strategy)
    )
    try:
        admin.execute(statement)
    except psycopg.errors.DuplicateDatabase as e:
        raise DatasetError(f"database {name!r} already exists") from e
    except psycopg.errors.ObjectInUse as e:
        raise DatasetError(f"cannot clone {template!r} while sessions use it: {e}") from e


def clone(write_dsn: str, template: str, name: str, *, now: datetime | None = None) -> str:
    """Copy `template` to a new database `name`, history shifted to end at `now`; its DSN.

    `now` defaults to the server's clock. Refuses to overwrite an existing database.
    """
    dsn = copy_database(write_dsn, template, name)
    try:
        _shift_history(dsn, now)
    except BaseException:
        drop_database(write_dsn, name)
        raise
    return dsn


def _shift_history(dsn: str, now: datetime | None) -> int:
    """Move every timestamp by whole minutes so the history ends at `now`; the minutes."""
    with _connect(dsn) as conn:
        found = conn.execute(
            "SELECT value::timestamptz, clock_timestamp() FROM dataset_info WHERE key = 'anchor'"
        ).fetchone()
        if found is None:
            raise DatasetError(f"{dsn}: not a dataset clone (dataset_info has no anchor)")
    anchor, server_now = found
    minutes = math.floor(((now or server_now) - anchor).total_seconds() / 60)
    shift_database(dsn, minutes)
    with _connect(dsn) as conn:
        end = (anchor + timedelta(minutes=minutes)).isoformat()
        conn.execute(
            "INSERT INTO dataset_info (key, value) VALUES ('shift_minutes', %s), "
            "('history_end', %s)",
            (str(minutes), end),
        )
    return minutes


def shift_minutes(dsn: str) -> int:
    """How many minutes a clone's history was moved (dataset_info's shift_minutes)."""
    with _connect(dsn) as conn:
        found = conn.execute(
            "SELECT value FROM dataset_info WHERE key = 'shift_minutes'"
        ).fetchone()
    if found is None:
        raise DatasetError(f"{dsn}: not a shifted clone (dataset_info has no shift_minutes)")
    return int(found[0])


def shift_database(dsn: str, minutes: int) -> None:
    """Move the SHIFTED_COLUMNS of the tables this database holds (a clone's, or a read database
    on its own server) by `minutes`, then freeze and analyze them.

    Each table is rewritten by a same-type ALTER ... USING (2-3x faster than an UPDATE plus
    VACUUM, and no dead half left behind to skew scans), LOADERS tables at once, each in its own
    transaction: a database whose shift fails is dropped by its caller. Materialized views over
    the tables are dropped first (ALTER COLUMN cannot change a column a view uses) and made
    again after, computed from the shifted rows."""
    with _connect(dsn) as conn:
        present = {
            r[0]
            for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
        }
        columns: dict[str, list[str]] = {}
        for table, column in sorted(SHIFTED_COLUMNS):
            if table in present:
                columns.setdefault(table, []).append(column)
        sizes = dict(
            conn.execute(
                "SELECT relname, pg_table_size(oid) FROM pg_class WHERE relname = ANY(%s)",
                (list(columns),),
            ).fetchall()
        )
        with conn.transaction():
            views = _drop_materialized_views(conn)
    by_size = sorted(columns, key=lambda table: -sizes.get(table, 0))
    _in_parallel(by_size, lambda table: _shift_table(dsn, table, columns[table], minutes))
    with _connect(dsn) as conn, conn.transaction():
        for statement in views:
            conn.execute(statement)


def _shift_table(dsn: str, table: str, columns: list[str], minutes: int) -> None:
    shift = sql.Literal(f"{minutes} minutes") + sql.SQL("::interval")
    alter = sql.SQL("ALTER TABLE {} {}").format(
        sql.Identifier(table),
        sql.SQL(", ").join(
            sql.SQL("ALTER COLUMN {c} TYPE timestamptz USING {c} + {shift}").format(
                c=sql.Identifier(column), shift=shift
            )
            for column in columns
        ),
    )
    with _connect(dsn) as conn:
        conn.execute("SET maintenance_work_mem = '512MB'")
        conn.execute(alter)
        conn.execute(sql.SQL("VACUUM (FREEZE, ANALYZE) {}").format(sql.Identifier(table)))


MATERIALIZED_VIEWS = """
    SELECT c.relname, pg_get_viewdef(c.oid),
           coalesce(array_agg(i.indexdef ORDER BY i.indexname)
                    FILTER (WHERE i.indexdef IS NOT NULL), '{}')
    FROM pg_class c
    JOIN pg_namespace n ON n.oid = c.relnamespace
    LEFT JOIN pg_indexes i ON i.schemaname = n.nspname AND i.tablename = c.relname
    WHERE c.relkind = 'm' AND n.nspname = 'public'
    GROUP BY c.oid, c.relname
    ORDER BY c.oid
"""


def _drop_materialized_views(conn: psycopg.Connection) -> list[sql.Composable]:
    """Drop the materialized views of the database (an architecture's, over the write tables);
    the statements that create them again, with their data and indexes."""
    again: list[sql.Composable] = []
    for name, definition, indexes in conn.execute(MATERIALIZED_VIEWS).fetchall():
        conn.execute(sql.SQL("DROP MATERIALIZED VIEW {}").format(sql.Identifier(name)))
        again.append(
            sql.SQL("CREATE MATERIALIZED VIEW {} AS {}").format(
                sql.Identifier(name), sql.SQL(definition.strip().rstrip(";"))
            )
        )
        again += [sql.SQL(index) for index in indexes]
    return again


def drop_database(write_dsn: str, name: str, *, force: bool = False) -> bool:
    """Drop database `name` (a template too) if it exists; False if there was none. With
    `force`, sessions still using it are ended first (a run's own database, whose queries may
    outlive the load generator that sent them)."""
    _check_name(name)
    with _connect(write_dsn) as admin:
        if not _exists(admin, name):
            return False
        _drop(admin, name, force=force)
    return True


def _drop(admin: psycopg.Connection, name: str, *, force: bool = False) -> None:
    if name in PROTECTED or name == admin.info.dbname:
        raise DatasetError(f"refusing to drop database {name!r}")
    ident = sql.Identifier(name)
    try:
        admin.execute(sql.SQL("ALTER DATABASE {} IS_TEMPLATE false").format(ident))
        admin.execute(
            sql.SQL("DROP DATABASE {}{}").format(ident, sql.SQL(" WITH (FORCE)" if force else ""))
        )
    except psycopg.errors.ObjectInUse as e:
        raise DatasetError(f"cannot drop {name!r} while sessions use it: {e}") from e


def create_empty_database(server_dsn: str, name: str) -> str:
    """A new empty database (for read models on the read server); refuses an existing name."""
    _check_name(name)
    with _connect(server_dsn) as admin:
        if _exists(admin, name):
            raise DatasetError(f"database {name} already exists on {server_dsn}; not touching it")
        admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return database_dsn(server_dsn, name)
