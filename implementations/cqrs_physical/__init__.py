"""cqrs-physical: the write model and outbox on the write server; the read models on their own."""

from .implementation import create

__all__ = ["create"]
