"""The HTTP service: the same routes for every implementation.

Bodies and query strings are checked for shape and type by pydantic (strict: "5" is not 5); the
domain checks ranges and rules. The ranges the domain enforces are also declared on the request
models and parameters (from the domain's own constants), so the OpenAPI description states them;
either check answers 422. Every caller mistake answers 422, 404 or 409 with a reason, before
anything is written.

Routes are coroutines that run their implementation call (blocking database I/O) in the thread
pool (`off_loop`); FastAPI then validates and serializes the answer on the event loop. A plain
`def` route costs two thread hops per request: FastAPI runs a sync route's response validation in
the thread pool as well (README: "The service tier").
"""

from __future__ import annotations

import asyncio
import os
import uuid
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Annotated, Literal

from fastapi import FastAPI, Header, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool as off_loop
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict, Field
from starlette.datastructures import Headers, MutableHeaders

from implementations.domain import commands as c
from implementations.domain import queries as q
from implementations.domain import results as r
from implementations.domain.errors import (
    Conflict,
    DomainError,
    InvalidInput,
    NotFound,
    NotYetVisible,
    RecoveryConflict,
    TransactionAborted,
    Unavailable,
)
from implementations.interface import ISOLATION_LEVELS, Implementation, Session
from implementations.session_headers import (
    ISOLATION_HEADER,
    REPORT_HEADER,
    RETRIES_HEADER,
    ROLE_HEADER,
)
from implementations.side_watch import SideWatch

STATUS = {InvalidInput: 422, NotFound: 404, Conflict: 409}
Token = Annotated[
    str | None,
    Query(description="consistency token from a command: wait (bounded) until it is visible"),
]


# The domain's ranges, declared (implementations/domain/commands.py, queries.py, validation.py).
# Ids are positive bigints: format int64 says so exactly (OpenAPI's maximum is a float, and
# 2**63 - 1 as a float is 2**63); the domain refuses larger ones with 422.
POSITIVE_ID = {
    "ge": 1,
    "description": "an id (a positive bigint)",
    "json_schema_extra": {"format": "int64"},
}
EntityId = Annotated[int, Field(**POSITIVE_ID)]
IdPath = Annotated[int, Path(**POSITIVE_ID)]
Limit = Annotated[int, Query(ge=1, le=q.MAX_LIMIT, description="rows at most")]
SearchPrice = Annotated[int | None, Query(ge=0, le=q.MAX_SEARCH_PRICE_CENTS)]
SearchText = Annotated[
    str | None, Query(min_length=1, max_length=q.MAX_TEXT, description="not blank, no NUL")
]


class Strict(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid")


class LineBody(Strict):
    product_id: EntityId
    quantity: Annotated[int, Field(ge=1, le=c.MAX_QUANTITY)]


class PlaceOrderBody(Strict):
    customer_id: EntityId
    lines: Annotated[
        list[LineBody],
        Field(min_length=1, max_length=c.MAX_LINES, description="each product on one line only"),
    ]


class PriceBody(Strict):
    new_price_cents: Annotated[int, Field(ge=1, le=c.MAX_PRICE_CENTS)]
    reason: Annotated[
        str, Field(min_length=1, max_length=c.MAX_TEXT, description="not blank, no NUL")
    ]


class RestockBody(Strict):
    quantity: Annotated[int, Field(ge=1, le=c.MAX_RESTOCK)]


def _status_of(exc: DomainError) -> int:
    return next(code for kind, code in STATUS.items() if isinstance(exc, kind))


async def _domain_error(_request: Request, exc: DomainError) -> JSONResponse:
    return JSONResponse({"error": exc.code, "reason": exc.reason}, status_code=_status_of(exc))


async def _retry_later(
    _request: Request, exc: NotYetVisible | Unavailable | RecoveryConflict
) -> JSONResponse:
    return JSONResponse(
        {"error": exc.code, "reason": exc.reason},
        status_code=503,
        headers={"Retry-After": "1"},
    )


async def _aborted(_request: Request, exc: TransactionAborted) -> JSONResponse:
    return JSONResponse(
        {"error": exc.code, "reason": exc.reason}, status_code=409, headers={"Retry-After": "1"}
    )


async def _invalid_request(_request: Request, exc: RequestValidationError) -> JSONResponse:
    problems = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
    return JSONResponse(
        {
            "error": "invalid_input",
            "reason": "; ".join(problems),
            "detail": jsonable_encoder(exc.errors()),
        },
        status_code=422,
    )


SIDES = ("both", "commands", "queries")


class ReportBody(Strict):
    isolation: Annotated[
        str,
        Field(
            description="at least repeatable read: one snapshot for every query of the report",
            json_schema_extra={"enum": list(ISOLATION_LEVELS)},
        ),
    ] = "repeatable read"


class Reports:
    """Report sessions the service holds for its callers, by id: each a Session whose queries
    share one transaction, and a lock so that one request at a time uses its connection."""

    def __init__(self, impl: Implementation) -> None:
        self.impl = impl
        self.held: dict[str, tuple[Session, asyncio.Lock]] = {}

    def begin(self, isolation: str) -> str:
        # the process that holds it, named in the id: a service may run several worker processes
        report = f"{uuid.uuid4()}-{os.getpid()}"
        self.held[report] = (self.impl.session(isolation, report=True), asyncio.Lock())
        return report

    def get(self, report: str) -> tuple[Session, asyncio.Lock]:
        if report not in self.held:
            holder = report.rpartition("-")[2]
            if holder.isdigit() and int(holder) != os.getpid():
                raise NotFound(
                    f"report {report} is held by another worker process of this service "
                    "(serve --workers): send a report's requests on the connection that began "
                    "it, or serve with one worker"
                )
            raise NotFound(f"report {report} does not exist (ended, or never begun)")
        return self.held[report]

    def end(self, report: str) -> None:
        session, _lock = self.get(report)
        del self.held[report]
        session.end_report()

    def end_all(self) -> None:
        for session, _lock in self.held.values():
            session.drop_report()
        self.held.clear()


def _report_routes(app: FastAPI, reports: Reports) -> None:
    """Reports are the query side's: a held transaction its queries share."""

    @app.post("/reports", status_code=201, tags=["reports"])
    async def begin_report(body: ReportBody | None = None) -> dict:
        """Begin a report: the queries sent with header `X-Report: <report>` run in one
        transaction (one snapshot, at least REPEATABLE READ) until DELETE /reports/<report>."""
        try:
            return {"report": reports.begin((body or ReportBody()).isolation)}  # no I/O
        except ValueError as exc:
            raise InvalidInput(str(exc)) from exc

    @app.delete("/reports/{report}", status_code=204, tags=["reports"])
    async def end_report(report: str) -> Response:
        """End a report: commit its transaction and give its connection back."""
        _session, lock = reports.get(report)
        async with lock:  # after the report's query in flight, if any
            await off_loop(reports.end, report)
        return Response(status_code=204)


class _SessionMiddleware:
    """Each request in a session: at its X-Isolation level (default read committed), or in the
    report its X-Report header names. Every response says how many times its command was retried
    (X-Retries: serialization failures, deadlocks), whether the write side is up and as of when
    the read models are (X-Write-Side, X-Read-Models-As-Of: from the SideWatch, at no cost to
    the request). A plain ASGI middleware: Starlette's BaseHTTPMiddleware (`@app.middleware`)
    runs every request in a task of its own with streams between them, which profiling showed
    to be a large share of the service's CPU per checkout (README: "The service tier")."""

    def __init__(self, app, impl: Implementation, reports: Reports, watch: SideWatch) -> None:
        self.app, self.impl, self.reports, self.watch = app, impl, reports, watch

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        report = headers.get(REPORT_HEADER)
        try:
            if report is None:
                isolation = headers.get(ISOLATION_HEADER, "read committed")
                session = self.impl.session(isolation, role=headers.get(ROLE_HEADER))
                lock = None
            else:
                session, lock = self.reports.get(report)
        except ValueError as exc:
            refused = JSONResponse(
                {"error": "invalid_input", "reason": f"session headers: {exc}"},
                status_code=422,
            )
            await refused(scope, receive, send)
            return
        except NotFound as exc:
            await (await _domain_error(None, exc))(scope, receive, send)
            return

        async def send_with_state(message) -> None:
            if message["type"] == "http.response.start":
                extra = MutableHeaders(scope=message)
                extra[RETRIES_HEADER] = str(session.retried)
                state = self.watch.state
                extra["X-Write-Side"] = "up" if state.write_up else "down"
                if state.read_models_as_of is not None:
                    extra["X-Read-Models-As-Of"] = state.read_models_as_of.isoformat()
            await send(message)

        if lock is None:
            with session.active():
                await self.app(scope, receive, send_with_state)
        else:
            async with lock:
                with session.active():
                    await self.app(scope, receive, send_with_state)


def create_app(impl: Implementation, side: str = "both", *, owned: bool = False) -> FastAPI:
    """The service; `side` serves only the command routes or only the query routes. `owned`:
    the service stops the (started) implementation when it stops (a worker process's own)."""
    if side not in SIDES:
        raise ValueError(f"side must be one of {', '.join(SIDES)}, not {side!r}")
    read_dsn = impl.projection.target_dsn if impl.projection else None
    watch = SideWatch(impl.config.write_dsn, read_dsn)

    reports = Reports(impl)

    @asynccontextmanager
    async def lifespan(_app: FastAPI):
        watch.start()
        yield
        reports.end_all()
        watch.stop()
        if owned:
            impl.stop()

    app = FastAPI(
        title="cqrs-bench order service",
        description=f"The order domain, served by the `{impl.name}` implementation.",
        version="1",
        lifespan=lifespan,
    )

    app.add_middleware(_SessionMiddleware, impl=impl, reports=reports, watch=watch)
    app.add_exception_handler(DomainError, _domain_error)
    # retries used up on a serialization failure or a deadlock: the same call again may succeed
    app.add_exception_handler(TransactionAborted, _aborted)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(NotYetVisible, _retry_later)
    # A server that is down or restarting: answer 503 at once rather than hang or 500.
    app.add_exception_handler(Unavailable, _retry_later)
    # A standby cancelled the query for replay: the same query asked again usually succeeds.
    app.add_exception_handler(RecoveryConflict, _retry_later)
    if side in ("both", "commands"):
        _command_routes(app, impl)
        _history_routes(app, impl)  # it reads the event store: the write side's own data
    if side in ("both", "queries"):
        _query_routes(app, impl)
        _report_routes(app, reports)

    @app.get("/health", tags=["service"])
    async def health() -> dict:
        return {"status": "ok", "implementation": impl.name, "side": side}

    @app.get("/status", tags=["service"])
    async def status() -> dict:
        """Each side's state and, for CQRS variants, where the projection stands."""
        state = await off_loop(watch.check)
        sides = {"write": "up" if state.write_up else "down"}
        projection = None
        if impl.projection:
            sides["read"] = "up" if state.read_up else "down"
            if state.write_up and state.read_up:
                projection = (await off_loop(impl.projection.status)).as_dict()
        return {
            "implementation": impl.name,
            "side": side,
            "process": os.getpid(),  # the worker process that answered (serve --workers)
            "sides": sides,
            "read_models_as_of": state.read_models_as_of,
            "projection": projection,
        }

    return app


def _command_routes(app: FastAPI, impl: Implementation) -> None:
    cmd = impl.commands

    @app.post("/orders", status_code=201, tags=["commands"])
    async def place_order(
        body: PlaceOrderBody,
        response: Response,
        idempotency_key: Annotated[
            str | None, Header(max_length=c.MAX_TEXT, description="not blank, no NUL")
        ] = None,
    ) -> r.PlacedOrder:
        """Checkout. Retrying with the same Idempotency-Key returns the first order (200)."""
        lines = tuple(c.OrderLine(line.product_id, line.quantity) for line in body.lines)
        placed = await off_loop(
            cmd.place_order,
            c.PlaceOrder(body.customer_id, lines, idempotency_key or f"auto-{uuid.uuid4()}"),
        )
        if placed.replayed:
            response.status_code = 200
            response.headers["Idempotent-Replayed"] = "true"
        return placed

    @app.post("/orders/{order_id}/cancel", tags=["commands"])
    async def cancel_order(order_id: IdPath) -> r.OrderStatusChanged:
        return await off_loop(cmd.cancel_order, c.CancelOrder(order_id))

    @app.post("/orders/{order_id}/ship", tags=["commands"])
    async def ship_order(order_id: IdPath) -> r.OrderStatusChanged:
        return await off_loop(cmd.ship_order, c.ShipOrder(order_id))

    @app.post("/products/{product_id}/price", tags=["commands"])
    async def change_price(product_id: IdPath, body: PriceBody) -> r.ProductState:
        return await off_loop(
            cmd.change_product_price,
            c.ChangeProductPrice(product_id, body.new_price_cents, body.reason),
        )

    @app.post("/products/{product_id}/discontinue", tags=["commands"])
    async def discontinue(product_id: IdPath) -> r.ProductState:
        return await off_loop(cmd.discontinue_product, c.DiscontinueProduct(product_id))

    @app.post("/products/{product_id}/restock", tags=["commands"])
    async def restock(product_id: IdPath, body: RestockBody) -> r.ProductState:
        return await off_loop(cmd.restock_product, c.RestockProduct(product_id, body.quantity))


def _query_routes(app: FastAPI, impl: Implementation) -> None:
    qry = impl.queries

    @app.get("/orders/{order_id}", tags=["queries"])
    async def order_summary(order_id: int, after: Token = None) -> r.OrderSummary:
        return await off_loop(qry.order_summary, order_id, after=after)

    @app.get("/customers/{customer_id}/orders", tags=["queries"])
    async def customer_orders(
        customer_id: IdPath, limit: Limit = 10, after: Token = None
    ) -> r.CustomerOrders:
        return await off_loop(
            qry.customer_orders, q.RecentOrdersQuery(customer_id, limit), after=after
        )

    @app.get("/dashboard/sales-by-category", tags=["dashboard"])
    async def sales_by_category(
        since: datetime, until: datetime, after: Token = None
    ) -> list[r.CategorySales]:
        return await off_loop(qry.sales_by_category, q.TimeWindow(since, until), after=after)

    @app.get("/dashboard/top-products", tags=["dashboard"])
    async def top_products(
        since: datetime, until: datetime, limit: Limit = 10, after: Token = None
    ) -> list[r.ProductRevenue]:
        return await off_loop(
            qry.top_products, q.TopProductsQuery(q.TimeWindow(since, until), limit), after=after
        )

    @app.get("/dashboard/revenue", tags=["dashboard"])
    async def revenue(
        since: datetime, until: datetime, bucket: q.Bucket = "hour", after: Token = None
    ) -> list[r.RevenuePoint]:
        return await off_loop(
            qry.revenue_over_time, q.RevenueQuery(q.TimeWindow(since, until), bucket), after=after
        )

    @app.get("/products/search", tags=["queries"])
    async def search_products(
        category: SearchText = None,
        min_price_cents: SearchPrice = None,
        max_price_cents: SearchPrice = None,
        text: SearchText = None,
        limit: Limit = 20,
        after: Token = None,
    ) -> list[r.ProductHit]:
        search = q.ProductSearch(category, min_price_cents, max_price_cents, text, limit)
        return await off_loop(qry.search_products, search, after=after)


def _history_routes(app: FastAPI, impl: Implementation) -> None:
    @app.get("/history/{kind}/{number}", tags=["history"])
    async def state_at(
        kind: Literal["order", "product"],
        number: IdPath,
        version: Annotated[int | None, Query(ge=1, le=2**63 - 1)] = None,
        at: datetime | None = None,
    ) -> dict:
        """An order's or a product's state as of a version of its stream or a time (neither:
        now): time travel, for an event-sourced architecture; 404 with a reason otherwise."""
        if impl.history is None:
            raise NotFound(
                f"{impl.name} keeps no history of states: time travel needs an event-sourced "
                "architecture"
            )
        found = await off_loop(impl.history.state_at, kind, number, version=version, at=at)
        return found.as_dict()
