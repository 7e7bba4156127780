"""crud: one normalized model; queries aggregate the live write tables."""

from implementations.crud.implementation import create

__all__ = ["create"]
