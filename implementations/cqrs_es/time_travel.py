"""What event sourcing buys: an order's or a product's state as of any version or time.

The state at version N is the fold of its stream's first N events (from the newest snapshot at or
before N: the library's repository). The state at a time is the state at the last version
recorded at or before it. Times are the run clone's: the history's events are moved by the
clone's shift, as the projection moves them (source.py).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any
from uuid import UUID

from eventsourcing.application import AggregateNotFoundError
from psycopg import sql

from implementations.cqrs_es.aggregates import ORDER, PRODUCT, stream_id
from implementations.cqrs_es.store import EVENTS_TABLE, Store, store_edge
from implementations.domain.errors import InvalidInput, NotFound

_AT = """
SELECT version, recorded_at FROM (
    SELECT e.originator_version AS version,
           es_recorded_at(convert_from(e.state, 'UTF8')::jsonb, e.notification_id, h.head,
                          h.shift) AS recorded_at
    FROM {events} e CROSS JOIN es_history() h
    WHERE e.originator_id = %(stream)s
) versions
WHERE (%(version)s::bigint IS NULL OR version = %(version)s)
  AND (%(at)s::timestamptz IS NULL OR recorded_at <= %(at)s)
ORDER BY version DESC LIMIT 1
"""
_LATEST = "SELECT max(originator_version) FROM {events} WHERE originator_id = %(stream)s"


@dataclass(frozen=True)
class StateAt:
    """One aggregate's state at one version of its stream."""

    kind: str  # "order" | "product"
    id: int
    version: int  # of its stream (1: created)
    latest_version: int  # the stream's newest
    recorded_at: datetime  # when the version's event was recorded (the clone's time)
    state: dict[str, Any]  # the aggregate's fields at that version

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


_FIELDS = {
    "order": ("order_id", "customer_id", "status", "total_cents", "lines", "row_version"),
    "product": (
        "product_id",
        "sku",
        "name",
        "category",
        "price_cents",
        "stock",
        "status",
        "row_version",
    ),
}
_KINDS = {"order": ORDER, "product": PRODUCT}


def state_at(
    store: Store,
    kind: str,
    number: int,
    *,
    version: int | None = None,
    at: datetime | None = None,
) -> StateAt:
    """`kind` ("order" or "product") `number` as of `version` or `at` (neither: now)."""
    if kind not in _KINDS:
        raise InvalidInput(f"time travel knows orders and products, not {kind!r}")
    if version is not None and at is not None:
        raise InvalidInput("give a version or a time, not both")
    if version is not None and version < 1:
        raise InvalidInput(f"versions start at 1, not {version}")
    if at is not None and at.tzinfo is None:
        raise InvalidInput("the time needs a time zone (for example 2026-11-28T10:00:00Z)")
    stream = stream_id(_KINDS[kind], number)
    with store_edge():
        found, latest = _version(store, stream, version, at)
        if latest is None:
            raise NotFound(f"{kind} {number} does not exist")
        if found is None:
            raise NotFound(_not_yet(kind, number, version, at, latest))
        try:
            aggregate = store.repository.get(stream, version=found[0])
        except AggregateNotFoundError:
            raise NotFound(f"{kind} {number} does not exist") from None
    fields = {name: getattr(aggregate, name) for name in _FIELDS[kind]}
    return StateAt(kind, number, found[0], latest, found[1], fields)


def _version(
    store: Store, stream: UUID, version: int | None, at: datetime | None
) -> tuple[tuple[int, datetime] | None, int | None]:
    """((the version, when recorded) or None, the stream's newest version or None)."""
    events = sql.Identifier(EVENTS_TABLE)
    params = {"stream": stream, "version": version, "at": at}
    with store.recorder.datastore.get_connection() as conn:  # rows as dicts
        newest = conn.execute(sql.SQL(_LATEST).format(events=events), params).fetchone()
        found = conn.execute(sql.SQL(_AT).format(events=events), params).fetchone()
    found_at = (found["version"], found["recorded_at"]) if found else None
    return found_at, newest["max"]


def _not_yet(kind: str, number: int, version: int | None, at: datetime | None, latest: int) -> str:
    if version is not None:
        return f"{kind} {number} has versions 1 to {latest}, not {version}"
    return f"{kind} {number} did not exist yet at {at.isoformat() if at else 'that time'}"


class StoreHistory:
    """cqrs-es's `impl.history` (implementations.interface.History), on its event store."""

    def __init__(self, store: Store) -> None:
        self.store = store

    def state_at(
        self, kind: str, number: int, *, version: int | None = None, at: datetime | None = None
    ) -> StateAt:
        return state_at(self.store, kind, number, version=version, at=at)
