"""An implementation ready to measure: a fresh clone of the dataset, its schema, its projection.

`provision` makes a run's databases (a clone of the dataset template on the write server and, for
an implementation with a read server of its own, an empty database of the same name there),
installs the implementation's schema and projects the history; `attached` starts an
implementation on existing databases; `prepared` does both with a projector process and drops
everything afterwards.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg

from harness.datasets import (
    clone,
    create_empty_database,
    database_dsn,
    drop_database,
    ensure_template,
)
from harness.projector_process import ProjectorProcess
from harness.servers import Servers
from implementations import registry
from implementations.interface import Config, Implementation
from implementations.projector.engine import Projector

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
    """Where `impl_name` keeps the run `name` on these servers."""
    impl = registry.create(impl_name, Config(servers.write_dsn, servers.read_dsn))
    separate = impl.separate_read_server and servers.read_dsn != servers.write_dsn
    return RunDatabases(name, database_dsn(servers.write_dsn, name),
                        database_dsn(servers.read_dsn, name), separate)  # fmt: skip


def _catch_up(impl: Implementation, progress: Progress) -> None:
    """Project the dataset's history, so the run starts with a caught-up projection."""
    started = time.perf_counter()
    with Projector(*impl.projection_dsns, batch_size=5000) as projector:
        events = projector.catch_up()
    seconds = max(time.perf_counter() - started, 1e-9)
    progress(f"projected {events:,} history events in {seconds:.1f}s ({events / seconds:,.0f}/s)")


def provision(impl_name: str, servers: Servers, *, sf: float, seed: int, name: str | None = None,
              progress: Progress = print) -> RunDatabases:  # fmt: skip
    """New databases for one run of `impl_name` (named `name`, else after the implementation
    and the time), schema installed and history projected."""
    registry.check(impl_name)
    template = ensure_template(servers.write_dsn, sf, seed, progress=progress)
    dbs = run_databases(impl_name, servers, name or clone_name(impl_name))
    started = time.perf_counter()
    clone(servers.write_dsn, template.name, dbs.name)
    progress(f"cloned dataset into {dbs.name} in {time.perf_counter() - started:.1f}s")
    try:
        impl = registry.create(impl_name, Config(dbs.write_dsn, dbs.read_dsn))
        if impl.separate_read_server and not dbs.separate:
            progress(
                f"warning: no read server of its own here: {impl_name}'s read models share the write server"
            )
        if dbs.separate:
            create_empty_database(servers.read_dsn, dbs.name)
        impl.install()
        if impl.needs_projector:
            _catch_up(impl, progress)
    except BaseException:
        drop(servers, dbs)
        raise
    return dbs


HUGE_STOCK = 10**12  # no checkout is refused for stock: refusals would change the load over time


def ready_for_load(write_dsn: str, read_dsn: str | None = None) -> None:
    """Raise every product's stock (stock is in no read model: nothing to project), then vacuum,
    analyze and checkpoint (and the read database, if given, apart): the state autovacuum would
    long have reached, so a measurement inherits no dirty pages and no statistics-less tables."""
    with psycopg.connect(write_dsn, autocommit=True, application_name="cqrs-bench:runner") as conn:
        conn.execute("UPDATE products SET stock = %s", (HUGE_STOCK,))
        conn.execute("VACUUM ANALYZE")
        conn.execute("CHECKPOINT")
    if read_dsn:
        with psycopg.connect(read_dsn, autocommit=True,
                             application_name="cqrs-bench:runner") as conn:  # fmt: skip
            conn.execute("VACUUM ANALYZE")
            conn.execute("CHECKPOINT")


def drop(servers: Servers, dbs: RunDatabases) -> None:
    drop_database(servers.write_dsn, dbs.name)
    if dbs.separate:
        drop_database(servers.read_dsn, dbs.name)


@contextmanager
def attached(impl_name: str, dbs: RunDatabases, *, pool_size: int = 16) -> Iterator[Implementation]:
    """`impl_name` started on existing run databases; stopped afterwards."""
    impl = registry.create(impl_name, Config(dbs.write_dsn, dbs.read_dsn, pool_size=pool_size))
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
) -> Iterator[Implementation]:
    """Provision, start a projector process if needed, and attach; stop and drop afterwards."""
    dbs = provision(impl_name, servers, sf=sf, seed=seed, progress=progress)
    projector = None
    try:
        with attached(impl_name, dbs, pool_size=pool_size) as impl:
            if impl.needs_projector:
                projector = ProjectorProcess(impl_name, *impl.projection_dsns, log_name=dbs.name)
                projector.start()
            yield impl
            if projector:
                projector.check()
    finally:
        if projector:
            projector.stop()
        if keep:
            progress(f"kept database {dbs.name} (drop it with `cqrs-bench db drop {dbs.name}`)")
        else:
            drop(servers, dbs)
