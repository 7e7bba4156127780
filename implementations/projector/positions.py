"""Positions in the outbox's commit order, and the consistency tokens commands hand out."""

from __future__ import annotations

from dataclasses import dataclass

from implementations.domain.errors import InvalidInput


@dataclass(frozen=True, order=True)
class Position:
    """(tx_id, position): outbox rows are applied in this order, which is commit-safe order."""

    tx_id: int
    position: int

    def token(self) -> str:
        return f"{self.tx_id}:{self.position}"


START = Position(0, 0)


def parse_token(token: str) -> Position:
    """A command's consistency token: the position of its last event ("tx_id:position")."""
    tx, sep, pos = token.partition(":")
    if not sep or not tx.isdigit() or not pos.isdigit() or len(token) > 41:
        raise InvalidInput(f"not a consistency token: {token[:50]!r} (expected tx_id:position)")
    return Position(int(tx), int(pos))
