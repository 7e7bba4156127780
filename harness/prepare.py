"""An implementation ready to measure: a fresh clone of the dataset, its schema, started."""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from harness.datasets import clone, drop_database, ensure_template
from harness.servers import Servers
from implementations import registry
from implementations.interface import Config, Implementation


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
    if impl_name not in registry.names():
        registry.create(impl_name, Config("", ""))  # raises the "unknown implementation" error
    template = ensure_template(servers.write_dsn, sf, seed, progress=progress)
    name = clone_name(impl_name)
    started = time.perf_counter()
    dsn = clone(servers.write_dsn, template.name, name)
    progress(f"cloned dataset into {name} in {time.perf_counter() - started:.1f}s")
    impl = registry.create(impl_name, Config(write_dsn=dsn, read_dsn=dsn, pool_size=pool_size))
    try:
        impl.install()
        impl.start()
        yield impl
    finally:
        impl.stop()
        if keep:
            progress(f"kept database {name}: {dsn}")
        else:
            drop_database(servers.write_dsn, name)
