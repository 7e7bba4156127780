"""The one projection engine both CQRS variants use: outbox reader, checkpoint, apply, status."""
