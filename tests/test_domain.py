"""Domain types without a database: validation, windows, event payloads and their schemas."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from implementations.domain import commands as c
from implementations.domain import events as e
from implementations.domain import queries as q
from implementations.domain.errors import InvalidInput

T0 = datetime(2026, 1, 1, 12, 30, 45, 123, tzinfo=UTC)


@pytest.mark.parametrize(
    "make",
    [
        lambda: c.OrderLine(1, 0),
        lambda: c.OrderLine(1, 101),
        lambda: c.OrderLine(0, 1),
        lambda: c.OrderLine(True, 1),
        lambda: c.PlaceOrder(1, (), "k"),
        lambda: c.PlaceOrder(1, tuple(c.OrderLine(i, 1) for i in range(1, 52)), "k"),
        lambda: c.PlaceOrder(1, (c.OrderLine(1, 1), c.OrderLine(1, 2)), "k"),
        lambda: c.PlaceOrder(1, (c.OrderLine(1, 1),), ""),
        lambda: c.PlaceOrder(2**63, (c.OrderLine(1, 1),), "k"),
        lambda: c.ChangeProductPrice(1, 0, "x"),
        lambda: c.RestockProduct(1, 0),
        lambda: q.TimeWindow(T0, T0 - timedelta(hours=1)),
        lambda: q.TimeWindow(T0.replace(tzinfo=None), T0),
        lambda: q.RevenueQuery(q.TimeWindow(T0, T0 + timedelta(days=8)), "minute"),
        lambda: q.ProductSearch(min_price_cents=5, max_price_cents=4),
    ],
)
def test_invalid_values_are_refused_on_construction(make):
    with pytest.raises(InvalidInput):
        make()


def test_valid_extremes_are_accepted():
    lines = tuple(c.OrderLine(i, 100) for i in range(1, 51))
    assert len(c.PlaceOrder(2**63 - 1, lines, "k" * 200).lines) == 50


def test_windows_are_whole_minutes_including_the_partial_last_one():
    window = q.TimeWindow(T0, T0 + timedelta(minutes=1))
    assert window.since == datetime(2026, 1, 1, 12, 30, tzinfo=UTC)
    assert window.until == datetime(2026, 1, 1, 12, 32, tzinfo=UTC)


def test_search_text_is_a_literal_pattern():
    assert q.ProductSearch(text="50%_off\\").like_pattern == "%50\\%\\_off\\\\%"


@pytest.mark.parametrize("name", sorted(e.EVENT_TYPES))
def test_every_event_has_a_payload_schema(name):
    schema = e.payload_schema(name)
    assert schema["type"] == "object" and schema["required"]


def test_payloads_round_trip_and_are_validated():
    event = e.OrderPlaced(7, 3, 1600, (e.PlacedLine(1, 5, 2, 800),))
    assert e.from_payload("OrderPlaced", e.to_payload(event)) == event
    with pytest.raises(ValueError):
        e.from_payload("OrderPlaced", {"order_id": 7})
