"""Database plumbing shared by implementations: engines, transactions with retry, driver errors.

Driver errors are translated here, at the persistence edge, so callers see domain errors only:
every command runs in `in_transaction` and every query in `read`, and both translate in `edge`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TypeVar

import psycopg.errors
from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from implementations.domain.errors import InvalidInput, RecoveryConflict, Unavailable

T = TypeVar("T")

RETRYABLE = (psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected)
MAX_RETRIES = 5


def sqlalchemy_url(dsn: str) -> str:
    """postgresql://... (libpq form) to SQLAlchemy's psycopg 3 dialect URL."""
    for prefix in ("postgresql+psycopg://", "postgresql://", "postgres://"):
        if dsn.startswith(prefix):
            return "postgresql+psycopg://" + dsn[len(prefix) :]
    raise ValueError(f"not a PostgreSQL URL: {dsn!r}")


def make_engine(
    dsn: str, *, component: str, pool_size: int = 16, generic_plans: bool = False
) -> Engine:
    """A pooled engine whose sessions run in UTC and name their component in application_name.

    generic_plans: plan each prepared statement once (plan_cache_mode=force_generic_plan). For
    the short command statements, whose array parameters otherwise make PostgreSQL re-plan them
    on every execution (measured: about 0.3 ms of server CPU per checkout).
    """
    options = "-c timezone=UTC" + (
        " -c plan_cache_mode=force_generic_plan" if generic_plans else ""
    )
    return create_engine(
        sqlalchemy_url(dsn),
        pool_size=pool_size,
        max_overflow=0,
        pool_timeout=10,
        connect_args={
            "application_name": f"cqrs-bench:{component}",
            "options": options,
            "connect_timeout": 5,
        },
    )


def driver(conn: Connection) -> psycopg.Connection:
    """The psycopg connection under a SQLAlchemy one, in the same transaction.

    The checkout's statements run here: SQLAlchemy Core's per-statement work was about a third of
    the checkout's client CPU (measured with py-spy), and checkout is the path being measured.
    """
    return conn.connection.driver_connection


def _driver_error(exc: Exception) -> Exception:
    return exc.orig if isinstance(exc, DBAPIError) else exc


# SQLSTATEs a hot standby cancels a query or session with when replay conflicts with it (the
# message then says "conflict with recovery"): serialization failure (snapshot, lock, tablespace),
# deadlock (buffer pin), database dropped.
RECOVERY_CONFLICT_STATES = ("40001", "40P01", "57P04")


def _recovery_conflict(cause: Exception) -> bool:
    return getattr(
        cause, "sqlstate", None
    ) in RECOVERY_CONFLICT_STATES and "conflict with recovery" in str(cause)


def _unavailable(exc: Exception) -> bool:
    """Whether the server, not the statement, failed: refused, unreachable, shutting down or
    starting, the connection lost (psycopg's OperationalError, raised through SQLAlchemy or, on
    the driver() path, directly), or no pooled connection free in time."""
    return (
        isinstance(_driver_error(exc), psycopg.OperationalError)
        or isinstance(exc, PoolTimeout)
        or (isinstance(exc, DBAPIError) and exc.connection_invalidated)
    )


@contextmanager
def edge() -> Iterator[None]:
    """The one place driver errors become domain errors: a value the database rejects is
    InvalidInput, a query a hot standby cancelled for replay is RecoveryConflict, a server that
    cannot serve is Unavailable; anything else passes unchanged."""
    try:
        yield
    except (DBAPIError, psycopg.Error, PoolTimeout) as exc:
        cause = _driver_error(exc)
        if isinstance(cause, psycopg.errors.DataError):
            raise InvalidInput(f"value rejected by the database: {cause}") from exc
        if _recovery_conflict(cause):
            raise RecoveryConflict(f"cancelled by the standby: {_first_line(cause)}") from exc
        if _unavailable(exc):
            raise Unavailable(f"database unavailable: {_first_line(cause)}") from exc
        raise


def _first_line(cause: Exception) -> str:
    said = str(cause).strip().splitlines()
    return said[0] if said else repr(cause)


def in_transaction(engine: Engine, work: Callable[[Connection], T]) -> T:
    """Run `work` in one transaction; retry on deadlock or serialization failure.

    A DomainError raised by `work` rolls the transaction back and reaches the caller unchanged;
    driver errors reach it translated (see edge).
    """
    with edge():
        for attempt in range(MAX_RETRIES + 1):
            try:
                with engine.begin() as conn:
                    return work(conn)
            except (DBAPIError, psycopg.Error) as exc:
                if isinstance(_driver_error(exc), RETRYABLE) and attempt < MAX_RETRIES:
                    continue
                raise
    raise AssertionError("unreachable")


def read(engine: Engine, work: Callable[[Connection], T]) -> T:
    """Run read-only `work` on a pooled connection; driver errors reach the caller translated
    (see edge), including those of taking and returning the connection."""
    with edge(), engine.connect() as conn:
        return work(conn)
