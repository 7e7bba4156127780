"""Database plumbing shared by implementations: engines, transactions with retry, driver errors.

Driver errors are translated here, at the persistence edge, so callers see domain errors only.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

import psycopg.errors
from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.exc import DBAPIError

from implementations.domain.errors import InvalidInput

T = TypeVar("T")

RETRYABLE = (psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected)
MAX_RETRIES = 5


def sqlalchemy_url(dsn: str) -> str:
    """postgresql://... (libpq form) to SQLAlchemy's psycopg 3 dialect URL."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if dsn.startswith(prefix):
            return "postgresql+psycopg://" + dsn[len(prefix) :]
    raise ValueError(f"not a PostgreSQL URL: {dsn!r}")


def make_engine(dsn: str, *, component: str, pool_size: int = 16) -> Engine:
    """A pooled engine whose sessions run in UTC and name their component in application_name."""
    return create_engine(
        sqlalchemy_url(dsn),
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=30,
        connect_args={"application_name": f"cqrs-bench:{component}", "options": "-c timezone=UTC"},
    )


def in_transaction(engine: Engine, work: Callable[[Connection], T]) -> T:
    """Run `work` in one transaction; retry on deadlock or serialization failure.

    A DomainError raised by `work` rolls the transaction back and reaches the caller unchanged.
    """
    for attempt in range(MAX_RETRIES + 1):
        try:
            with engine.begin() as conn:
                return work(conn)
        except DBAPIError as exc:
            if isinstance(exc.orig, RETRYABLE) and attempt < MAX_RETRIES:
                continue
            if isinstance(exc.orig, psycopg.errors.DataError):
                raise InvalidInput(f"value rejected by the database: {exc.orig}") from exc
            raise
    raise AssertionError("unreachable")


def read(engine: Engine, work: Callable[[Connection], T]) -> T:
    """Run read-only `work` on a pooled connection."""
    with engine.connect() as conn:
        try:
            return work(conn)
        except DBAPIError as exc:
            if isinstance(exc.orig, psycopg.errors.DataError):
                raise InvalidInput(f"value rejected by the database: {exc.orig}") from exc
            raise
