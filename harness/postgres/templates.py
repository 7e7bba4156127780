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
import time
import zlib
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from urllib.parse import quote, urlsplit, urlunsplit

import psycopg
from psycopg import sql
from psycopg.conninfo import make_conninfo

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
    dataset = generate(sf, seed)
    generated = time.perf_counter() - started
    progress(f"generated {_rate(dataset.total_rows, generated)}")
    building = f"{name}_building_{os.getpid()}"
    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(building)))
    try:
        copied = _load(database_dsn(write_dsn, building), dataset, progress)
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


def _load(dsn: str, dataset: Dataset, progress: Progress) -> float:
    """Schema, COPY of every table, identity sequences, freeze and statistics: the COPY seconds."""
    with _connect(dsn) as conn:
        started = time.perf_counter()
        with conn.transaction():
            # As superuser, skip the per-row foreign key triggers and check once, set-based, after.
            unchecked = conn.execute("SELECT current_setting('is_superuser')::bool").fetchone()[0]
            if unchecked:
                conn.execute("SET LOCAL session_replication_role = replica")
            conn.execute(schema_sql())  # COPY FREEZE needs the tables created in this transaction
            for table in TABLES:
                _copy(conn, dataset, table, progress)
            if unchecked:
                _check_foreign_keys(conn)
            _finish_tables(conn, dataset)
        copied = time.perf_counter() - started
        progress(f"copied {_rate(dataset.total_rows, copied)}")
        vacuum_started = time.perf_counter()
        conn.execute("VACUUM (FREEZE, ANALYZE)")
        progress(f"vacuum (freeze, analyze) in {time.perf_counter() - vacuum_started:.1f}s")
    return copied


_FOREIGN_KEYS = """
SELECT c.conname, c.conrelid::regclass::text, c.confrelid::regclass::text,
       array(SELECT a.attname FROM unnest(c.conkey) WITH ORDINALITY k(n, i)
             JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.n ORDER BY k.i),
       array(SELECT a.attname FROM unnest(c.confkey) WITH ORDINALITY k(n, i)
             JOIN pg_attribute a ON a.attrelid = c.confrelid AND a.attnum = k.n ORDER BY k.i)
FROM pg_constraint c
WHERE c.contype = 'f' AND c.connamespace = 'public'::regnamespace
"""


def _check_foreign_keys(conn: psycopg.Connection) -> None:
    """What the skipped triggers would have checked, one anti-join per foreign key."""
    for name, child, parent, columns, referenced in conn.execute(_FOREIGN_KEYS).fetchall():
        match = sql.SQL(" AND ").join(
            sql.SQL("p.{} = c.{}").format(sql.Identifier(r), sql.Identifier(col))
            for col, r in zip(columns, referenced, strict=True)
        )
        query = sql.SQL(
            "SELECT count(*) FROM {} c WHERE NOT EXISTS (SELECT 1 FROM {} p WHERE {})"
        ).format(sql.Identifier(child), sql.Identifier(parent), match)
        if missing := conn.execute(query).fetchone()[0]:
            raise DatasetError(f"generated rows break foreign key {name}: {missing} rows")


def _copy(conn: psycopg.Connection, dataset: Dataset, table: str, progress: Progress) -> None:
    """The table's COPY text, streamed in the generator's chunks of about a megabyte."""
    started = time.perf_counter()
    columns = sql.SQL(", ").join(map(sql.Identifier, TABLES[table]))
    statement = sql.SQL("COPY {} ({}) FROM STDIN WITH (FREEZE)").format(
        sql.Identifier(table), columns
    )
    with conn.cursor().copy(statement) as copy:
        for chunk in dataset.tables[table]:
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


def copy_database(server_dsn: str, template: str, name: str) -> str:
    """A file copy of `template` as a new database `name` on the same server, history not moved;
    its DSN. Refuses to overwrite an existing database."""
    _check_name(name)
    with _connect(server_dsn) as admin:
        if _exists(admin, name):
            raise DatasetError(
                f"database {name!r} already exists; clone will not overwrite it "
                "(drop it first or choose another name)"
            )
        if not _exists(admin, template):
            raise DatasetError(f"template {template!r} does not exist; run `cqrs-bench load`")
        _copy_template(admin, template, name)
    return database_dsn(server_dsn, name)


def _copy_template(admin: psycopg.Connection, template: str, name: str) -> None:
    statement = sql.SQL("CREATE DATABASE {} TEMPLATE {} STRATEGY FILE_COPY").format(
        sql.Identifier(name), sql.Identifier(template)
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
        with conn.transaction():
            found = conn.execute(
                "SELECT value::timestamptz, clock_timestamp() FROM dataset_info WHERE key = 'anchor'"
            ).fetchone()
            if found is None:
                raise DatasetError(f"{dsn}: not a dataset clone (dataset_info has no anchor)")
            anchor, server_now = found
            minutes = math.floor(((now or server_now) - anchor).total_seconds() / 60)
            tables = _shift(conn, minutes)
            end = (anchor + timedelta(minutes=minutes)).isoformat()
            conn.execute(
                "INSERT INTO dataset_info (key, value) VALUES ('shift_minutes', %s), "
                "('history_end', %s)",
                (str(minutes), end),
            )
        _freeze(conn, tables)
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
    """Move the time columns of the tables this database holds (a read database on its own
    server, say) by `minutes`, as its write database's clone was moved."""
    with _connect(dsn) as conn:
        with conn.transaction():
            tables = _shift(conn, minutes)
        _freeze(conn, tables)


def _shift(conn: psycopg.Connection, minutes: int) -> list[str]:
    """Shift every SHIFTED_COLUMNS column present in the database; the tables it rewrote."""
    present = {
        r[0] for r in conn.execute("SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    }
    shifted = sorted((t, c) for t, c in SHIFTED_COLUMNS if t in present)
    views = _drop_materialized_views(conn)  # ALTER COLUMN cannot change a column a view uses
    for table, column in shifted:
        # A same-type ALTER ... USING rewrites the table compactly: 2-3x faster than an
        # UPDATE plus VACUUM, and no dead half left behind to skew scans.
        statement = sql.SQL(
            "ALTER TABLE {t} ALTER COLUMN {c} TYPE timestamptz USING {c} + {shift}"
        ).format(
            t=sql.Identifier(table),
            c=sql.Identifier(column),
            shift=sql.Literal(f"{minutes} minutes") + sql.SQL("::interval"),
        )
        conn.execute(statement)
    for statement in views:  # back, computed from the shifted rows
        conn.execute(statement)
    return sorted({t for t, _ in shifted})


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


def _freeze(conn: psycopg.Connection, tables: list[str]) -> None:
    for table in tables:
        conn.execute(sql.SQL("VACUUM (FREEZE, ANALYZE) {}").format(sql.Identifier(table)))


def drop_database(write_dsn: str, name: str) -> bool:
    """Drop database `name` (a template too) if it exists; False if there was none."""
    _check_name(name)
    with _connect(write_dsn) as admin:
        if not _exists(admin, name):
            return False
        _drop(admin, name)
    return True


def _drop(admin: psycopg.Connection, name: str) -> None:
    if name in PROTECTED or name == admin.info.dbname:
        raise DatasetError(f"refusing to drop database {name!r}")
    ident = sql.Identifier(name)
    try:
        admin.execute(sql.SQL("ALTER DATABASE {} IS_TEMPLATE false").format(ident))
        admin.execute(sql.SQL("DROP DATABASE {}").format(ident))
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
