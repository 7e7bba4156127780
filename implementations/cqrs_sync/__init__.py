"""cqrs-sync: the read models updated in the command's own transaction, by the projector's apply code."""

from .implementation import create

__all__ = ["create"]
