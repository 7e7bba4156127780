"""crud: one normalized model; queries aggregate the live write tables."""

from .implementation import create

__all__ = ["create"]
