"""crud-matview: crud, with dashboards read from materialized views refreshed in the background."""

from .implementation import create

__all__ = ["create"]
