"""cqrs-es query side: the shared read models, in the same database as the event store."""

from __future__ import annotations

from sqlalchemy import Engine

from implementations.read_model.queries import ReadModelQueries


def query_side(engine: Engine, wait_bound: float) -> ReadModelQueries:
    return ReadModelQueries(engine, wait_bound=wait_bound)
