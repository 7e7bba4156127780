"""cqrs-logical: same database; write model + outbox; async projector into separate read tables."""

from implementations.cqrs_logical.implementation import create

__all__ = ["create"]
