"""Wires cqrs-es: commands on the event store; queries on the shared read models, which a
projector (run by the harness) fills from the store's notification log, in the same database."""

from __future__ import annotations

from importlib.metadata import version
from importlib.resources import files

import psycopg
from psycopg import sql

from implementations.cqrs_es import history
from implementations.cqrs_es.aggregates import PRODUCT
from implementations.cqrs_es.commands import ORDER_IDS, EsCommandSide
from implementations.cqrs_es.source import EVENT_STORE
from implementations.cqrs_es.store import (
    EVENTS_TABLE,
    SNAPSHOTS_TABLE,
    AggregateStores,
    Store,
)
from implementations.cqrs_es.time_travel import StoreHistory
from implementations.db import make_engine
from implementations.interface import Config
from implementations.lifecycle import PooledImplementation
from implementations.projector.projection import OutboxProjection

from .queries import query_side


class CqrsEs(PooledImplementation):
    def __init__(self, name: str, config: Config) -> None:
        super().__init__(name, config)
        self.projection = OutboxProjection(config.write_dsn, config.write_dsn, source=EVENT_STORE)
        self.store: Store | None = None

    def install(self) -> None:
        """The event store's tables, the dataset's history converted into it (once), snapshots of
        the product streams longer than the snapshot interval, and the read models."""
        store = Store(
            self.config.write_dsn,
            pool_size=1,
            create_tables=True,
            snapshots=self._interval,
            cache=0,
        )
        try:
            with psycopg.connect(self.config.write_dsn) as conn:
                conn.execute(f"CREATE SEQUENCE IF NOT EXISTS {ORDER_IDS}")
                views = files(__package__).joinpath("write_model.sql").read_text()
                keys = {
                    "history_head": sql.Literal(history.HISTORY_HEAD),
                    "history_shift": sql.Literal(history.HISTORY_SHIFT),
                }
                conn.execute(sql.SQL(views).format(**keys, **history.topics()))
                empty = conn.execute(f"SELECT NOT EXISTS (SELECT FROM {EVENTS_TABLE})").fetchone()
                if empty[0]:
                    history.convert(conn)
            _snapshot_long_streams(store, self.config.write_dsn, self._interval)
        finally:
            store.close()
        self.projection.install()

    def start(self) -> None:
        size = self.config.pool_size
        queries = make_engine(
            self.config.write_dsn, component=f"{self.name}:queries", pool_size=size
        )
        self.engines = [queries]
        self.store = Store(
            self.config.write_dsn,
            pool_size=size,
            snapshots=self._interval,
            cache=self.config.settings["aggregate_cache"],
            component=f"{self.name}:commands",
        )
        self.commands = EsCommandSide(self.store)
        self.history = StoreHistory(self.store)
        self.queries = query_side(queries, self.config.read_your_writes_timeout)

    def settings(self) -> dict[str, object]:
        return {"library": f"eventsourcing {version('eventsourcing')}", **super().settings()}

    @property
    def _interval(self) -> int:
        return self.config.settings["snapshot_interval"]

    def aggregate_stores(self) -> AggregateStores:
        """A store that reads snapshots and one that does not (bench aggregates); close it."""
        return AggregateStores(self.config.write_dsn, self._interval)

    def stop(self) -> None:
        super().stop()
        if self.store is not None:
            self.store.close()
            self.store, self.history = None, None


def _snapshot_long_streams(store: Store, dsn: str, interval: int) -> int:
    """Snapshot every product stream with at least the interval's events and no snapshot yet (the
    history's hot products: without one, the first checkout of the hottest would fold thousands
    of events); how many."""
    if not interval:
        return 0
    with psycopg.connect(dsn) as conn:
        streams = conn.execute(
            f"""SELECT e.originator_id FROM {EVENTS_TABLE} e
                WHERE e.originator_id::text LIKE %s
                  AND NOT EXISTS (SELECT FROM {SNAPSHOTS_TABLE} s
                                  WHERE s.originator_id = e.originator_id)
                GROUP BY e.originator_id HAVING max(e.originator_version) >= %s""",
            (f"{PRODUCT:08x}-%", interval),
        ).fetchall()
    for (stream,) in streams:
        store.take_snapshot(stream)
    return len(streams)


def create(name: str, config: Config) -> CqrsEs:
    return CqrsEs(name, config)
