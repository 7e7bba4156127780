"""crud-replica: crud's commands on the primary, crud's queries on a streaming hot standby."""

from .implementation import create

__all__ = ["create"]
