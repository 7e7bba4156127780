"""crud query side: every answer is aggregated from the live normalized tables, which are always
current (consistency tokens are accepted and ignored)."""

from __future__ import annotations

from implementations.live_queries import LiveQueries as CrudQueries

__all__ = ["CrudQueries"]
