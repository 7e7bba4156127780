"""The event store: an `eventsourcing` Application on PostgreSQL (its `eventsourcing.postgres`
persistence, psycopg 3), in the run's write database.

The library records an `Application.save()` of several aggregates in one transaction, after
`LOCK TABLE es_events IN EXCLUSIVE MODE`: writers take their notification ids one transaction at
a time, so the notification log is in commit order and a reader never passes over a gap that
fills later (the projection reads it by `notification_id`). A stream's (id, version) is the
table's primary key: appending to a stream that moved on since it was loaded fails with
`IntegrityError`, the optimistic concurrency the commands retry on.

Product streams are snapshotted every `snapshots` events (the architecture's snapshot_interval
setting, default 50), so loading a hot product reads its newest snapshot and the events after
it; with 0, no snapshot is taken or read. Each process keeps up to `cache` aggregates (its
aggregate_cache setting, default 10,000; 0: none) in the library's cache, brought up to date by
reading the events recorded since (`bench aggregates` loads without it).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from uuid import UUID

import psycopg
from eventsourcing.application import Application
from eventsourcing.persistence import IntegrityError, PersistenceError
from eventsourcing.postgres import PostgresFactory
from eventsourcing.utils import Environment, get_topic
from psycopg.conninfo import conninfo_to_dict

from implementations.cqrs_es.aggregates import PRODUCT, Product
from implementations.db import APP_PREFIX, edge
from implementations.domain.errors import Unavailable

NAME = "es"  # the tables: es_events, es_snapshots
EVENTS_TABLE, SNAPSHOTS_TABLE = f"{NAME}_events", f"{NAME}_snapshots"

__all__ = ["IntegrityError", "Store", "store_edge"]


def _postgres_env(dsn: str, pool_size: int, create_tables: bool) -> dict[str, str]:
    """The library's configuration (it reads environment-style keys) for the database `dsn`."""
    parts = conninfo_to_dict(dsn)
    return {
        "PERSISTENCE_MODULE": get_topic(NamedPostgresFactory),
        "POSTGRES_DBNAME": str(parts.get("dbname", "postgres")),
        "POSTGRES_HOST": str(parts.get("host", "127.0.0.1")),
        "POSTGRES_PORT": str(parts.get("port", "5432")),
        "POSTGRES_USER": str(parts.get("user", "postgres")),
        "POSTGRES_PASSWORD": str(parts.get("password", "")),
        "POSTGRES_POOL_SIZE": str(pool_size),
        "POSTGRES_MAX_OVERFLOW": "0",
        "POSTGRES_CONNECT_TIMEOUT": "5",
        "CREATE_TABLE": "y" if create_tables else "n",
    }


class NamedPostgresFactory(PostgresFactory):
    """The library's PostgreSQL persistence, its pool's sessions given the application_name in
    APPLICATION_NAME: set before the recorder's first connection (which opens the pool), so that
    every pooled session has it."""

    APPLICATION_NAME = "APPLICATION_NAME"

    def __init__(self, env: Environment) -> None:
        super().__init__(env)
        if name := self.env.get(self.APPLICATION_NAME):
            self.datastore.pool.kwargs["application_name"] = name


class Store(Application):
    """The shop's event store. Thread-safe: its connections come from the library's pool, named
    `cqrs-bench:<component>` in application_name when a component is given (as make_engine
    names the other architectures' sessions), so waits and lock waits are attributed to it."""

    name = NAME

    def __init__(
        self,
        dsn: str,
        *,
        snapshots: int,
        cache: int,
        pool_size: int = 8,
        create_tables: bool = False,
        component: str = "",
    ) -> None:
        self.snapshotting_intervals = {Product: snapshots} if snapshots else {}
        env = _postgres_env(dsn, pool_size, create_tables)
        # the library's aggregate cache: a cached aggregate is brought up to date with the events
        # recorded since (fastforward: one query) instead of loaded from its snapshot
        env["AGGREGATE_CACHE_MAXSIZE"] = str(cache) if cache else ""
        # with interval 0, aggregates are folded from their first event, snapshots or not (the
        # snapshots table is created all the same)
        env["IS_SNAPSHOTTING_ENABLED"] = "y" if snapshots or create_tables else "n"
        if component:
            env[NamedPostgresFactory.APPLICATION_NAME] = f"{APP_PREFIX}{component}"
        super().__init__(env)


@contextmanager
def store_edge() -> Iterator[None]:
    """implementations.db.edge for the event store: the library wraps the driver's errors in its
    own (the driver's as their cause), which reach the caller translated as edge translates the
    driver's; one without a driver error under it (no pooled connection in time) is
    Unavailable."""
    with edge():
        try:
            yield
        except PersistenceError as exc:
            if isinstance(exc.__cause__, psycopg.Error):
                raise exc.__cause__ from exc
            raise Unavailable(f"event store unavailable: {exc}") from exc


class AggregateStores:
    """Two stores on one database, for `bench aggregates`: one reading snapshots, one folding
    every event of a stream."""

    def __init__(self, dsn: str, snapshots: int) -> None:
        self.dsn = dsn
        self.stores = {  # no cache: every load is a load
            True: Store(dsn, pool_size=1, snapshots=snapshots, cache=0),
            False: Store(dsn, pool_size=1, snapshots=0, cache=0),
        }

    def hottest(self) -> tuple[str, int, int | None]:
        """The longest product stream: its id, its events, its newest snapshot's version."""
        with self.stores[True].recorder.datastore.get_connection() as conn:
            row = conn.execute(
                f"""SELECT e.originator_id::text AS stream, max(e.originator_version) AS events,
                           (SELECT max(s.originator_version) FROM {SNAPSHOTS_TABLE} s
                            WHERE s.originator_id = e.originator_id) AS snapshot
                    FROM {EVENTS_TABLE} e WHERE e.originator_id::text LIKE %s
                    GROUP BY e.originator_id ORDER BY 2 DESC LIMIT 1""",
                (f"{PRODUCT:08x}-%",),
            ).fetchone()
        return row["stream"], row["events"], row["snapshot"]

    def load(self, snapshots: bool, stream: str) -> Product:
        return self.stores[snapshots].repository.get(UUID(stream))

    def close(self) -> None:
        for store in self.stores.values():
            store.close()
