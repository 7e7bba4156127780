"""cqrs-sync query side: the shared read models, in the write model's database. Every committed
command is already in them, so there is no token to wait for (tokens are ignored, as crud does)."""

from __future__ import annotations

from sqlalchemy import Engine

from implementations.read_model.queries import ReadModelQueries


def query_side(engine: Engine) -> ReadModelQueries:
    return ReadModelQueries(engine, tokens=False)
