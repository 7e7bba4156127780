"""Query parameters, validated on construction (InvalidInput)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Literal

from implementations.domain import validation as v
from implementations.domain.errors import InvalidInput

Bucket = Literal["minute", "hour"]
BUCKET_SPAN = {"minute": timedelta(minutes=1), "hour": timedelta(hours=1)}
MAX_POINTS = 10_080  # one week of minutes
MAX_WINDOW = timedelta(days=366)
MAX_LIMIT = 100  # rows a query returns at most
MAX_TEXT = 100  # characters of a search's category or text
MAX_SEARCH_PRICE_CENTS = 10**12


def floor_minute(ts: datetime) -> datetime:
    return ts.replace(second=0, microsecond=0)


def ceil_minute(ts: datetime) -> datetime:
    floored = floor_minute(ts)
    return floored if floored == ts else floored + timedelta(minutes=1)


@dataclass(frozen=True)
class TimeWindow:
    """Half-open [since, until) in whole minutes: since is floored, until is rounded up.

    Whole minutes let pre-aggregated read models answer exactly what the live tables answer.
    """

    since: datetime
    until: datetime

    def __post_init__(self) -> None:
        v.aware("since", self.since)
        v.aware("until", self.until)
        object.__setattr__(self, "since", floor_minute(self.since))
        object.__setattr__(self, "until", ceil_minute(self.until))
        if self.until <= self.since:
            raise InvalidInput("until must be after since")
        if self.until - self.since > MAX_WINDOW:
            raise InvalidInput(f"a window spans at most {MAX_WINDOW.days} days")


@dataclass(frozen=True)
class RevenueQuery:
    window: TimeWindow
    bucket: Bucket = "hour"

    def __post_init__(self) -> None:
        if self.bucket not in BUCKET_SPAN:
            raise InvalidInput(f"bucket must be one of {sorted(BUCKET_SPAN)}")
        if (self.window.until - self.window.since) / BUCKET_SPAN[self.bucket] > MAX_POINTS:
            raise InvalidInput(f"at most {MAX_POINTS} {self.bucket} buckets per query")


@dataclass(frozen=True)
class TopProductsQuery:
    window: TimeWindow
    limit: int = 10

    def __post_init__(self) -> None:
        v.int_in("limit", self.limit, 1, MAX_LIMIT)


@dataclass(frozen=True)
class ProductSearch:
    """Active products, optionally by category, price range and text in name or sku."""

    category: str | None = None
    min_price_cents: int | None = None
    max_price_cents: int | None = None
    text: str | None = None
    limit: int = 20

    def __post_init__(self) -> None:
        if self.category is not None:
            v.text("category", self.category, MAX_TEXT)
        if self.text is not None:
            v.text("text", self.text, MAX_TEXT)
        for name in ("min_price_cents", "max_price_cents"):
            if (value := getattr(self, name)) is not None:
                v.int_in(name, value, 0, MAX_SEARCH_PRICE_CENTS)
        if (
            self.min_price_cents is not None
            and self.max_price_cents is not None
            and self.min_price_cents > self.max_price_cents
        ):
            raise InvalidInput("min_price_cents must not exceed max_price_cents")
        v.int_in("limit", self.limit, 1, MAX_LIMIT)

    @property
    def like_pattern(self) -> str | None:
        """The text as a case-insensitive substring pattern for ILIKE (wildcards escaped)."""
        if self.text is None:
            return None
        escaped = self.text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
        return f"%{escaped}%"


@dataclass(frozen=True)
class RecentOrdersQuery:
    customer_id: int
    limit: int = 10

    def __post_init__(self) -> None:
        v.entity_id("customer_id", self.customer_id)
        v.int_in("limit", self.limit, 1, MAX_LIMIT)
