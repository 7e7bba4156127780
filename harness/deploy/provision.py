"""An implementation ready to measure: a fresh clone of the dataset, its schema, its projection.

`provision` makes a run's databases (a clone of the dataset template on the write server and, for
an implementation with a read server of its own, an empty database of the same name there),
installs the implementation's schema and projects the history; `attached` starts an
implementation on existing databases; `prepared` does both with a projector process and drops
everything afterwards.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

import implementations
from harness.deploy.projector import ProjectorProcess, catch_up
from harness.deploy.refresher import RefresherProcess
from harness.postgres.servers import Servers, standby_dsn, work_dir
from harness.postgres.templates import (
    clone,
    copy_database,
    database_dsn,
    drop_database,
    ensure_derived_template,
    ensure_template,
    shift_database,
    shift_minutes,
    template_name,
)
from implementations import registry
from implementations.interface import MAX_RETRIES, Config, Implementation

Progress = Callable[[str], None]


@dataclass(frozen=True)
class RunDatabases:
    name: str
    write_dsn: str
    read_dsn: str
    separate: bool  # a database of the same name on the read server belongs to the run


def clone_name(impl: str) -> str:
    return f"cqrsb_{impl.replace('-', '_')}_{time.strftime('%Y%m%d_%H%M%S')}_{os.getpid()}"


def run_databases(impl_name: str, servers: Servers, name: str) -> RunDatabases:
    """Where `impl_name` keeps the run `name` on these servers. An architecture that reads a
    standby reads the same database on the write server's standby (started here if it is not
    running): replication brings it there, and drops it there."""
    arch = registry.architecture(impl_name)
    separate = arch.separate_read_server and servers.read_dsn != servers.write_dsn
    read_server = standby_dsn(servers) if arch.reads_standby else servers.read_dsn
    return RunDatabases(
        name, database_dsn(servers.write_dsn, name), database_dsn(read_server, name), separate
    )


def _catch_up(impl: Implementation, progress: Progress) -> None:
    """Project the dataset's history, so the run starts with a caught-up projection."""
    started = time.perf_counter()
    events = catch_up(impl.projection)
    seconds = max(time.perf_counter() - started, 1e-9)
    progress(f"projected {events:,} history events in {seconds:.1f}s ({events / seconds:,.0f}/s)")


def code_version(impl_name: str) -> str:
    """A digest of the code and schemas `impl_name`'s template depends on: its own folder and
    the shared packages of implementations/ (not the other architectures' folders). Its ready
    template is rebuilt when any of it changes."""
    own = registry.architecture(impl_name).folder
    others = {a.folder for a in registry.architectures().values()} - {own}
    root = Path(implementations.__file__).resolve().parent
    digest = hashlib.sha256()
    for path in sorted({*root.rglob("*"), *own.rglob("*")}):
        if (
            path.suffix in (".py", ".sql", ".toml")
            and "__pycache__" not in path.parts
            and not any(path.is_relative_to(folder) for folder in others)
        ):
            name = path.relative_to(own.parent if path.is_relative_to(own) else root)
            digest.update(name.as_posix().encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()


def ready_template_name(impl_name: str, sf: float, seed: int) -> str:
    """The dataset template's name, then a digest of the implementation and its code."""
    tag = hashlib.sha256(f"{impl_name}:{code_version(impl_name)}".encode()).hexdigest()[:8]
    return f"{template_name(sf, seed)}_r{tag}"


def ready_template(
    impl_name: str, servers: Servers, *, sf: float, seed: int, progress: Progress = print
) -> tuple[str, bool]:
    """`impl_name`'s template for (sf, seed): the dataset with its schema installed and its
    history projected (built once per dataset and code version, then cloned by every run); its
    name and whether it has a database on the read server too."""
    template = ensure_template(servers.write_dsn, sf, seed, progress=progress)
    name = ready_template_name(impl_name, sf, seed)
    separate = run_databases(impl_name, servers, name).separate

    def build(write_dsn: str, read_dsn: str | None) -> None:
        progress(f"building {impl_name}'s template {name} (once per dataset and code version)")
        impl = registry.create(impl_name, Config(write_dsn, read_dsn or write_dsn))
        impl.install()
        if impl.projection:
            _catch_up(impl, progress)

    started = time.perf_counter()
    if ensure_derived_template(
        servers.write_dsn,
        servers.read_dsn if separate else None,
        template.name,
        name,
        build,
        progress=progress,
    ):
        progress(f"template {name} ready in {time.perf_counter() - started:.1f}s")
    return name, separate


def provision(
    impl_name: str,
    servers: Servers,
    *,
    sf: float,
    seed: int,
    name: str | None = None,
    progress: Progress = print,
) -> RunDatabases:
    """New databases for one run of `impl_name` (named `name`, else after the implementation
    and the time): clones of its ready template, schema installed and history projected, the
    history moved to end now."""
    registry.check(impl_name)
    template, separate = ready_template(impl_name, servers, sf=sf, seed=seed, progress=progress)
    dbs = run_databases(impl_name, servers, name or clone_name(impl_name))
    if registry.architecture(impl_name).separate_read_server and not separate:
        progress(
            f"warning: no read server of its own here: {impl_name}'s read models share the "
            "write server"
        )
    started = time.perf_counter()
    clone(servers.write_dsn, template, dbs.name)
    try:
        if dbs.separate:
            copy_database(servers.read_dsn, template, dbs.name)
            shift_database(dbs.read_dsn, shift_minutes(dbs.write_dsn))
    except BaseException:
        drop(servers, dbs)
        raise
    progress(f"cloned {template} into {dbs.name} in {time.perf_counter() - started:.1f}s")
    return dbs


HUGE_STOCK = 10**12  # no checkout is refused for stock: refusals would change the load over time


def ready_for_load(write_dsn: str, read_dsn: str | None = None) -> None:
    """Raise every product's stock (stock is in no read model; an event store records the raise
    as events, which its projection passes over before a lag is measured), then vacuum,
    analyze and checkpoint (and the read database, if given, apart): the state autovacuum would
    long have reached, so a measurement inherits no dirty pages and no statistics-less tables."""
    with psycopg.connect(write_dsn, autocommit=True, application_name="cqrs-bench:runner") as conn:
        conn.execute("UPDATE products SET stock = %s", (HUGE_STOCK,))
        conn.execute("VACUUM ANALYZE")
        conn.execute("CHECKPOINT")
    if read_dsn:
        with psycopg.connect(
            read_dsn, autocommit=True, application_name="cqrs-bench:runner"
        ) as conn:
            conn.execute("VACUUM ANALYZE")
            conn.execute("CHECKPOINT")


def drop(servers: Servers, dbs: RunDatabases) -> None:
    """Drop a run's databases, ending the sessions still in them: a dashboard sent before the
    load generator stopped can run on for minutes on a large dataset."""
    drop_database(servers.write_dsn, dbs.name, force=True)
    if dbs.separate:
        drop_database(servers.read_dsn, dbs.name, force=True)


@contextmanager
def attached(
    impl_name: str,
    dbs: RunDatabases,
    *,
    pool_size: int = 16,
    retries: int = MAX_RETRIES,
    settings: Mapping[str, int] | None = None,
) -> Iterator[Implementation]:
    """`impl_name` started on existing run databases (with these of its settings); stopped
    afterwards."""
    config = Config(
        dbs.write_dsn,
        dbs.read_dsn,
        pool_size=pool_size,
        retries=retries,
        settings=dict(settings or {}),
    )
    impl = registry.create(impl_name, config)
    impl.start()
    try:
        yield impl
    finally:
        impl.stop()


@contextmanager
def prepared(
    impl_name: str,
    servers: Servers,
    *,
    sf: float,
    seed: int,
    keep: bool = False,
    progress: Progress = print,
    pool_size: int = 16,
    retries: int = MAX_RETRIES,
    settings: Mapping[str, int] | None = None,
) -> Iterator[Implementation]:
    """Provision, start a projector or refresher process if needed, and attach; stop and drop
    afterwards."""
    dbs = provision(impl_name, servers, sf=sf, seed=seed, progress=progress)
    background: list[ProjectorProcess | RefresherProcess] = []
    logs = work_dir() / "logs"
    try:
        with attached(
            impl_name, dbs, pool_size=pool_size, retries=retries, settings=settings
        ) as impl:
            if impl.projection:
                log = logs / f"{dbs.name}-projector.log"
                background.append(ProjectorProcess(impl_name, dbs.write_dsn, dbs.read_dsn, log))
            if impl.refresher:
                log = logs / f"{dbs.name}-refresher.log"
                record = logs / f"{dbs.name}-refreshes.jsonl"
                background.append(
                    RefresherProcess(impl_name, (dbs.write_dsn, dbs.read_dsn), log, record=record)
                )
            for process in background:
                process.start()
                process.wait_active()
                progress(f"{process.name} process {process.pid} active; its log: {process.log}")
            yield impl
            for process in background:
                process.check()
    finally:
        for process in background:
            process.stop()
        if keep:
            progress(f"kept database {dbs.name} (drop it with `cqrs-bench db drop {dbs.name}`)")
        else:
            drop(servers, dbs)
