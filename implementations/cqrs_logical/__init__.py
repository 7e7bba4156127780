"""cqrs-logical: same database; write model + outbox; async projector into separate read tables."""

from .implementation import create

__all__ = ["create"]
