"""An implementation ready to measure: a fresh clone of the dataset, its schema, started."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

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


def _catch_up(impl: Implementation, progress: Callable[[str], None]) -> None:
    """Project the dataset's history, so the run starts with a caught-up projection."""
    started = time.perf_counter()
    with Projector(*impl.projection_dsns, batch_size=5000) as projector:
        events = projector.catch_up()
    seconds = time.perf_counter() - started
    progress(
        f"projected {events:,} history events in {seconds:.1f}s ({events / max(seconds, 1e-9):,.0f}/s)"
    )


def clone_name(impl: str) -> str:
    return f"cqrsb_{impl.replace('-', '_')}_{time.strftime('%Y%m%d_%H%M%S')}_{os.getpid()}"


@contextmanager
def prepared(
    impl_name: str,
    servers: Servers,
    *,
    sf: float,
    seed: int,
    keep: bool = False,
    progress: Callable[[str], None] = print,
    pool_size: int = 16,
) -> Iterator[Implementation]:
    """Clone the (sf, seed) dataset, install and start `impl_name` on it; stop and drop afterwards."""
    registry.check(impl_name)
    template = ensure_template(servers.write_dsn, sf, seed, progress=progress)
    name = clone_name(impl_name)
    started = time.perf_counter()
    dsn = clone(servers.write_dsn, template.name, name)
    progress(f"cloned dataset into {name} in {time.perf_counter() - started:.1f}s")
    read_dsn = database_dsn(servers.read_dsn, name)
    impl = registry.create(impl_name, Config(write_dsn=dsn, read_dsn=read_dsn, pool_size=pool_size))
    projector = None
    separate = impl.separate_read_server and servers.read_dsn != servers.write_dsn
    try:
        if impl.separate_read_server and not separate:
            progress(
                f"warning: {impl_name} has no read server of its own here: read models share the write server"
            )
        elif separate:
            create_empty_database(servers.read_dsn, name)
        impl.install()
        if impl.needs_projector:
            _catch_up(impl, progress)
            projector = ProjectorProcess(impl_name, *impl.projection_dsns, log_name=name).start()
        impl.start()
        yield impl
        if projector:
            projector.check()
    finally:
        impl.stop()
        if projector:
            projector.stop()
        if keep:
            progress(f"kept database {name}: {dsn}" + (f" and {read_dsn}" if separate else ""))
        else:
            drop_database(servers.write_dsn, name)
            if separate:
                drop_database(servers.read_dsn, name)
