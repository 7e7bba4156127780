"""cqrs-physical: the write model and outbox on the write server; the read models on their own."""

from implementations.cqrs_physical.implementation import create

__all__ = ["create"]
