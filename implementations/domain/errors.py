"""Domain errors. Each kind maps to one HTTP status in the API (422, 404, 409; 503 for the three
that are not a caller's mistake: NotYetVisible, Unavailable and RecoveryConflict; 409 with
Retry-After for a transaction the database aborted: SerializationFailure, Deadlock,
VersionConflict)."""


class DomainError(Exception):
    """Base of every error a command or query can raise for a caller's mistake."""

    code = "domain_error"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class InvalidInput(DomainError):
    code = "invalid_input"


class NotFound(DomainError):
    code = "not_found"


class Conflict(DomainError):
    code = "conflict"


class ProductDiscontinued(Conflict):
    code = "product_discontinued"


class OutOfStock(Conflict):
    code = "out_of_stock"


class InvalidTransition(Conflict):
    code = "invalid_transition"


class NotYetVisible(Exception):
    """A query given a consistency token waited its bound and the projection had not caught up.

    Not a caller's mistake: the API answers 503 with Retry-After.
    """

    code = "not_yet_visible"

    def __init__(self, reason: str, waited: float) -> None:
        super().__init__(reason)
        self.reason, self.waited = reason, waited


class Unavailable(Exception):
    """The database could not serve the call: it refused the connection or could not be reached,
    is shutting down or starting up, the connection was lost during the call, or no pooled
    connection came free in time.

    Raised at the persistence edge (implementations.db) in place of the driver's errors, so
    callers catch this alone and never name a driver's exceptions. A command that meets it may or
    may not have committed (the connection can be lost once the commit was sent); PlaceOrder's
    idempotency key makes its retry safe. Not a caller's mistake: the API answers 503 with
    Retry-After.
    """

    code = "unavailable"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class RecoveryConflict(Exception):
    """A query on a hot standby was cancelled by the standby itself: replaying the primary's WAL
    needed something the query held (row versions its snapshot still saw, a lock, a pinned
    buffer, a dropped database), and replay waited `max_standby_streaming_delay` for it.

    Not a caller's mistake and not an outage: the same query asked again usually succeeds. Its
    own type (not Unavailable) so that load runs count it apart. The API answers 503 with
    Retry-After.
    """

    code = "recovery_conflict"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class TransactionAborted(Exception):
    """The database aborted the transaction to keep concurrent ones correct, and a command's
    bounded retries (`Config.retries`) all met the same: not a caller's mistake, nothing was
    written, and the same call made again usually succeeds. The API answers 409 with
    Retry-After. Raised at the persistence edge (implementations.db) in place of the driver's
    errors; queries are not retried (a query meeting it fails at once)."""

    code = "transaction_aborted"

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class SerializationFailure(TransactionAborted):
    """SQLSTATE 40001 on the primary: at REPEATABLE READ or SERIALIZABLE, a row changed since the
    snapshot, or SERIALIZABLE's predicate locks found a dangerous structure."""

    code = "serialization_failure"


class Deadlock(TransactionAborted):
    """SQLSTATE 40P01: this transaction was the victim of a lock cycle."""

    code = "deadlock"


class VersionConflict(TransactionAborted):
    """An event-sourced command's recording found a stream it appends to moved on since it was
    loaded (optimistic concurrency: another command appended first), every time it was retried."""

    code = "version_conflict"
