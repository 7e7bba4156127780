"""The protocol every implementation satisfies: a command side, a query side and a lifecycle.

The harness, the workloads and the API use implementations only through these types and the
registry (`implementations.registry`: which architectures there are and what each declares), so
the same load and the same routes drive every architecture.
"""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from implementations.db import ISOLATION_LEVELS as ISOLATION_LEVELS  # weakest first
from implementations.db import MAX_RETRIES as MAX_RETRIES
from implementations.domain.commands import (
    CancelOrder,
    ChangeProductPrice,
    DiscontinueProduct,
    PlaceOrder,
    RestockProduct,
    ShipOrder,
)
from implementations.domain.queries import (
    ProductSearch,
    RecentOrdersQuery,
    RevenueQuery,
    TimeWindow,
    TopProductsQuery,
)
from implementations.domain.results import (
    CategorySales,
    CustomerOrders,
    OrderStatusChanged,
    OrderSummary,
    PlacedOrder,
    ProductHit,
    ProductRevenue,
    ProductState,
    RevenuePoint,
)
from implementations.projector.engine import Projector
from implementations.projector.source import Source
from implementations.projector.status import ProjectionStatus


@dataclass(frozen=True)
class Config:
    """Where an implementation keeps its data. crud uses only write_dsn."""

    write_dsn: str
    read_dsn: str
    pool_size: int = 16
    read_your_writes_timeout: float = 5.0  # how long a query given a token waits for it
    # how many times a command meeting a serialization failure or a deadlock is run again
    retries: int = MAX_RETRIES
    # the architecture's own settings (its architecture.toml [settings]); registry.create fills
    # in the defaults of those not given and refuses any it does not declare
    settings: dict[str, int] = field(default_factory=dict)


class Session(Protocol):
    """How one caller's commands and queries run; `Implementation.session()` makes one.

    Calls made inside `with session.active():` run at `isolation` (queries at `query_isolation`:
    the same, or the strongest the query side's server offers, or at least REPEATABLE READ in a
    report). With `report`, the queries share one transaction (one snapshot) until
    `end_report()`; the next query begins the next report. One caller at a time.
    """

    isolation: str
    query_isolation: str
    report: bool
    retried: int  # retries the commands of the last `active()` block made

    def active(self) -> AbstractContextManager[Session]: ...

    def end_report(self) -> None:
        """Commit the report's transaction and give its connection back (no-op without one)."""


class CommandSide(Protocol):
    def place_order(self, cmd: PlaceOrder) -> PlacedOrder: ...
    def cancel_order(self, cmd: CancelOrder) -> OrderStatusChanged: ...
    def ship_order(self, cmd: ShipOrder) -> OrderStatusChanged: ...
    def change_product_price(self, cmd: ChangeProductPrice) -> ProductState: ...
    def discontinue_product(self, cmd: DiscontinueProduct) -> ProductState: ...
    def restock_product(self, cmd: RestockProduct) -> ProductState: ...


class QuerySide(Protocol):
    """Every query may take a consistency token and wait (bounded) until it is visible."""

    def order_summary(self, order_id: int, *, after: str | None = None) -> OrderSummary: ...
    def customer_orders(
        self, query: RecentOrdersQuery, *, after: str | None = None
    ) -> CustomerOrders: ...
    def sales_by_category(
        self, window: TimeWindow, *, after: str | None = None
    ) -> list[CategorySales]: ...
    def top_products(
        self, query: TopProductsQuery, *, after: str | None = None
    ) -> list[ProductRevenue]: ...
    def revenue_over_time(
        self, query: RevenueQuery, *, after: str | None = None
    ) -> list[RevenuePoint]: ...
    def search_products(
        self, query: ProductSearch, *, after: str | None = None
    ) -> list[ProductHit]: ...


class Projection(Protocol):
    """Read models a projector fills from an event source, an outbox or another table
    (`implementations.projector`); the harness runs the projector process on `source_dsn` ->
    `target_dsn` while the implementation is used."""

    source_dsn: str  # the database holding the events
    target_dsn: str  # the database holding the read models and the checkpoint
    source: Source  # how the events are read (also by the lag sampler)

    @property
    def dsns(self) -> tuple[str, str]:
        """(source_dsn, target_dsn)."""

    def projector(self, **options) -> Projector:
        """The projection engine on these databases, for a caller that applies in-process
        (`batch_size`, `poll_interval`, `on_applied`)."""

    def status(self) -> ProjectionStatus:
        """Head, checkpoint, events behind, whether a projector is active."""

    def wait_caught_up(
        self, timeout: float, alive: Callable[[], bool] = lambda: True
    ) -> float | None:
        """Seconds until the checkpoint covered the source's head as it was when called; None after
        `timeout` or once `alive()` is false."""


@dataclass(frozen=True)
class Refreshed:
    """One refresh of one materialized view, as the refresher timed it."""

    view: str
    started_at: (
        float  # epoch s: the start of its transaction; the view's data is current as of then
    )
    ended_at: float  # epoch s: its commit (queries started after it read the new data)
    backend_cpu_s: float | None  # CPU time of the server backend that refreshed it (None: unknown)


class Refresher(Protocol):
    """Materialized views a background worker refreshes every N seconds; the harness runs it as a
    process of its own (`cqrs-bench refresh run`) while the implementation is used."""

    # which view each query-side method reads (its answers are as old as that view's data)
    reads: dict[str, str]

    def refresh(self) -> list[Refreshed]:
        """Refresh every view now, one after another, each in its own transaction; how each went."""

    def close(self) -> None:
        """Close its connection."""


class History(Protocol):
    """An event-sourced architecture's states of the past (time travel)."""

    def state_at(
        self, kind: str, number: int, *, version: int | None = None, at: datetime | None = None
    ) -> Any:
        """Order or product `number` ("order", "product") as of its stream's `version` or as of
        `at` (neither: now): its fields, version and when that version was recorded (a
        dataclass with as_dict()). NotFound for an unknown one or a version or time before it;
        InvalidInput for anything else amiss."""


class Implementation(Protocol):
    name: str  # its architecture's name (the registry gives it)
    config: Config
    commands: CommandSide
    queries: QuerySide
    projection: Projection | None  # None: nothing for a projector to do
    refresher: Refresher | None  # None: no materialized views to refresh
    history: History | None  # None: not event-sourced (set by start() when it is)

    def install(self) -> None:
        """Create this implementation's own schema objects on a fresh dataset clone (idempotent)."""

    def start(self) -> None:
        """Open connection pools and start any background work."""

    def settings(self) -> dict[str, object]:
        """What it runs with, for run.json (may be empty): its Config.settings, and anything
        else it is configured with."""

    def stop(self) -> None:
        """Stop background work and close every connection."""

    def session(
        self, isolation: str = "read committed", *, report: bool = False, role: str | None = None
    ) -> Session:
        """A session at `isolation` (ValueError for a level not in ISOLATION_LEVELS), with
        `config.retries`; with `report`, its queries run in reports (see Session); with `role`
        (a lowercase name), its commands' sessions name it in application_name instead of
        `commands`, so the lock waits they cause are attributed to it."""
