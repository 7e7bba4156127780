"""cqrs-es: an event store (the eventsourcing library) as the write side; a projector fills the
shared read models from its notification log."""

from .implementation import create

__all__ = ["create"]
