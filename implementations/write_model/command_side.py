"""The command side every architecture shares: each command in one transaction on the write model.

What differs per architecture is `publish`: what a command does with the events it produced, in
the same transaction. crud drops them; the CQRS variants append them to the outbox and return the
consistency token it gives.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection, Engine

from implementations.db import in_transaction
from implementations.domain import commands as c
from implementations.domain import results as r
from implementations.domain.events import Event
from implementations.write_model import checkout, handlers

C = TypeVar("C", bound=c.Command)
R = TypeVar("R")
Publish = Callable[[Connection, list[Event]], str | None]


def drop_events(_conn: Connection, _events: list[Event]) -> None:
    return None


class CommandSide:
    def __init__(self, engine: Engine, publish: Publish = drop_events) -> None:
        self.engine, self.publish = engine, publish

    def _handle(self, handler: Callable[[Connection, C], tuple[R, list[Event]]], cmd: C) -> R:
        def work(conn: Connection) -> R:
            result, events = handler(conn, cmd)
            token = self.publish(conn, events)
            return result if token is None else dataclasses.replace(result, token=token)

        return in_transaction(self.engine, work)

    def place_order(self, cmd: c.PlaceOrder) -> r.PlacedOrder:
        return self._handle(checkout.place_order, cmd)

    def cancel_order(self, cmd: c.CancelOrder) -> r.OrderStatusChanged:
        return self._handle(handlers.cancel_order, cmd)

    def ship_order(self, cmd: c.ShipOrder) -> r.OrderStatusChanged:
        return self._handle(handlers.ship_order, cmd)

    def change_product_price(self, cmd: c.ChangeProductPrice) -> r.ProductState:
        return self._handle(handlers.change_product_price, cmd)

    def discontinue_product(self, cmd: c.DiscontinueProduct) -> r.ProductState:
        return self._handle(handlers.discontinue_product, cmd)

    def restock_product(self, cmd: c.RestockProduct) -> r.ProductState:
        return self._handle(handlers.restock_product, cmd)
