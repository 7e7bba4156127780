"""Domain errors. Each kind maps to one HTTP status in the API (422, 404, 409)."""


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

    def __init__(self, reason: str, waited: float) -> None:
        super().__init__(reason)
        self.reason, self.waited = reason, waited
