"""crud command side: the write-model handlers, each in its own transaction, with no events."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from sqlalchemy import Connection, Engine

from implementations.db import in_transaction
from implementations.domain import commands as c
from implementations.domain import results as r
from implementations.domain.events import Event
from implementations.write_model import checkout
from implementations.write_model import commands as handlers

C = TypeVar("C", bound=c.Command)
R = TypeVar("R")


class CrudCommands:
    def __init__(self, engine: Engine) -> None:
        self.engine = engine

    def _handle(self, handler: Callable[[Connection, C], tuple[R, list[Event]]], cmd: C) -> R:
        return in_transaction(self.engine, lambda conn: handler(conn, cmd)[0])

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
