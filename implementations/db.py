"""Database plumbing shared by implementations: engines, transactions with retry, sessions,
driver errors.

Driver errors are translated here, at the persistence edge, so callers see domain errors only:
every command runs in `in_transaction` and every query in `read`, and both translate in `edge`.
Both run as the caller's current `Session` says (isolation level, retries, a report's held
transaction); a call made outside any session runs at READ COMMITTED with MAX_RETRIES.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import TypeVar

import psycopg.errors
from sqlalchemy import Connection, Engine, create_engine
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from implementations.domain.errors import (
    Deadlock,
    InvalidInput,
    RecoveryConflict,
    SerializationFailure,
    Unavailable,
)

T = TypeVar("T")

APP_PREFIX = "cqrs-bench:"  # a session's application_name: this, then its component
RETRYABLE = (psycopg.errors.SerializationFailure, psycopg.errors.DeadlockDetected)
MAX_RETRIES = 5
# a role's name in place of the last part of the session's application_name, for one transaction
NAMED_ROLE = (
    "SELECT set_config('application_name', "
    "regexp_replace(current_setting('application_name'), '[^:]*$', %s), true)"
)
# weakest first; a report's transaction is at least REPEATABLE READ (one snapshot throughout)
ISOLATION_LEVELS = ("read committed", "repeatable read", "serializable")
READ_COMMITTED, REPEATABLE_READ, SERIALIZABLE = ISOLATION_LEVELS


def check_isolation(level: object) -> str:
    """`level` if it names an isolation level, else ValueError saying which there are."""
    if level not in ISOLATION_LEVELS:
        raise ValueError(
            f"isolation must be one of {', '.join(repr(x) for x in ISOLATION_LEVELS)}, "
            f"not {level!r}"
        )
    return level


def _stronger(a: str, b: str) -> str:
    return max(a, b, key=ISOLATION_LEVELS.index)


def _weaker(a: str, b: str) -> str:
    return min(a, b, key=ISOLATION_LEVELS.index)


class Session:
    """How one caller's calls run (`implementations.interface.Session`): the commands and queries
    called inside `with session.active():` (on that thread or greenlet: a context variable) run at
    `isolation`; a command meeting a serialization failure or a deadlock is retried at most
    `retries` times (`retried`: how many retries the calls of the last `active()` block made);
    with `report`, every query runs on one held connection in one transaction of at least
    REPEATABLE READ (one snapshot) until `end_report()` or an error ends it, and the next query
    begins the next report. `query_ceiling`: the strongest level the query side's server offers
    (a hot standby refuses SERIALIZABLE: its queries run at REPEATABLE READ then). `role`: a
    lowercase name its commands' transactions give their session's application_name in place
    of the engine's last part (`cqrs-bench:<impl>:commands` becomes `...:<role>`), for the
    lock-wait attribution; it costs each of its commands one statement.

    One caller at a time: a report's connection must not be shared by concurrent calls.
    """

    def __init__(
        self,
        isolation: str = READ_COMMITTED,
        *,
        report: bool = False,
        retries: int = MAX_RETRIES,
        query_ceiling: str = SERIALIZABLE,
        role: str | None = None,
    ) -> None:
        if role is not None and not re.fullmatch(r"[a-z][a-z_]{0,30}", role):
            raise ValueError(f"role must be a lowercase name, not {role!r}")
        self.isolation, self.report, self.role = check_isolation(isolation), report, role
        self.retries, self.retried = retries, 0
        query_level = _weaker(isolation, check_isolation(query_ceiling))
        self.query_isolation = (
            _weaker(_stronger(query_level, REPEATABLE_READ), query_ceiling)
            if report
            else query_level
        )
        self._held: dict[Engine, Connection] = {}  # a report's connections, by engine

    @contextmanager
    def active(self) -> Iterator[Session]:
        self.retried = 0
        token = _CURRENT.set(self)
        try:
            yield self
        finally:
            _CURRENT.reset(token)

    def end_report(self) -> None:
        """Commit the report's transaction (a serializable report's reads then count) and give
        its connection back; a no-op outside a report."""
        held, self._held = self._held, {}
        with edge():
            for conn in held.values():
                try:
                    conn.commit()
                finally:
                    conn.close()

    def drop_report(self) -> None:
        """Give the report's connection back without committing (its transaction rolls back)."""
        held, self._held = self._held, {}
        for conn in held.values():
            try:
                conn.close()
            except Exception:  # noqa: BLE001  closing a broken connection: it is gone either way
                pass


_CURRENT: ContextVar[Session | None] = ContextVar("cqrs_bench_session", default=None)


def current_session() -> Session:
    """The caller's session, or a fresh default one (READ COMMITTED, MAX_RETRIES)."""
    return _CURRENT.get() or Session()


def _at(conn: Connection, isolation: str) -> Connection:
    """`conn` set to begin its next transaction at `isolation` (psycopg sends it with BEGIN; the
    pool resets the level when the connection goes back)."""
    if isolation != READ_COMMITTED:
        conn.execution_options(isolation_level=isolation.upper())
    return conn


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
            "application_name": f"{APP_PREFIX}{component}",
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
    InvalidInput, a query a hot standby cancelled for replay is RecoveryConflict, a serialization
    failure or deadlock (what a command's retries did not get past) is SerializationFailure or
    Deadlock, a server that cannot serve is Unavailable; anything else passes unchanged."""
    try:
        yield
    except (DBAPIError, psycopg.Error, PoolTimeout) as exc:
        cause = _driver_error(exc)
        if isinstance(cause, psycopg.errors.DataError):
            raise InvalidInput(f"value rejected by the database: {cause}") from exc
        if _recovery_conflict(cause):
            raise RecoveryConflict(f"cancelled by the standby: {_first_line(cause)}") from exc
        if isinstance(cause, psycopg.errors.SerializationFailure):
            raise SerializationFailure(_first_line(cause)) from exc
        if isinstance(cause, psycopg.errors.DeadlockDetected):
            raise Deadlock(_first_line(cause)) from exc
        if _unavailable(exc):
            raise Unavailable(f"database unavailable: {_first_line(cause)}") from exc
        raise


def _first_line(cause: Exception) -> str:
    said = str(cause).strip().splitlines()
    return said[0] if said else repr(cause)


def in_transaction(engine: Engine, work: Callable[[Connection], T]) -> T:
    """Run `work` in one transaction at the session's isolation level; retry on deadlock or
    serialization failure, at most the session's `retries` times, counting each in its `retried`.

    A DomainError raised by `work` rolls the transaction back and reaches the caller unchanged;
    driver errors reach it translated (see edge).
    """
    session = current_session()
    with edge():
        for attempt in range(session.retries + 1):
            try:
                with _at(engine.connect(), session.isolation) as conn, conn.begin():
                    if session.role:  # back to the engine's name when the transaction ends
                        conn.exec_driver_sql(NAMED_ROLE, (session.role,))
                    return work(conn)
            except (DBAPIError, psycopg.Error) as exc:
                if isinstance(_driver_error(exc), RETRYABLE) and attempt < session.retries:
                    session.retried += 1
                    continue
                raise
    raise AssertionError("unreachable")


def read(engine: Engine, work: Callable[[Connection], T]) -> T:
    """Run read-only `work` at the session's isolation level, in a report on the report's held
    connection and transaction; driver errors reach the caller translated (see edge), including
    those of taking and returning the connection. Any error ends a report (its transaction may
    be aborted)."""
    session = current_session()
    with edge():
        if not session.report:
            with _at(engine.connect(), session.query_isolation) as conn:
                result = work(conn)
                if session.query_isolation != READ_COMMITTED:
                    conn.commit()  # a serializable read that rolls back would not count
                return result
        if engine not in session._held:
            session._held[engine] = _at(engine.connect(), session.query_isolation)
        try:
            return work(session._held[engine])
        except BaseException:
            session.drop_report()
            raise
