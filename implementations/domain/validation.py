"""Input checks shared by commands and queries; each failure is an InvalidInput with a reason."""

from __future__ import annotations

from datetime import datetime

from implementations.domain.errors import InvalidInput

MAX_ID = 2**63 - 1  # ids are PostgreSQL bigint


def int_in(name: str, value: object, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool):
        raise InvalidInput(f"{name} must be an integer, got {type(value).__name__}")
    if not low <= value <= high:
        raise InvalidInput(f"{name} must be between {low} and {high}, got {value}")
    return value


def entity_id(name: str, value: object) -> int:
    return int_in(name, value, 1, MAX_ID)


def text(name: str, value: object, max_len: int, *, allow_empty: bool = False) -> str:
    if not isinstance(value, str):
        raise InvalidInput(f"{name} must be a string, got {type(value).__name__}")
    if not allow_empty and not value.strip():
        raise InvalidInput(f"{name} must not be empty")
    if len(value) > max_len or "\x00" in value:
        raise InvalidInput(f"{name} must be at most {max_len} characters, without NUL")
    return value


def aware(name: str, value: object) -> datetime:
    if not isinstance(value, datetime) or value.tzinfo is None:
        raise InvalidInput(f"{name} must be a timestamp with a time zone")
    return value
