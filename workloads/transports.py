"""Two ways to reach an implementation, one client interface (users.ShopClient).

`http` sends the API's routes with Locust's FastHttpSession; `inproc` creates the implementation
inside the Locust process and calls it directly (psycopg 3 cooperates with gevent once Locust has
monkey-patched). Both report each call to Locust's request event under the operation's name and
name errors alike: the domain error code, "recovery_conflict" for a query a hot standby
cancelled, "unavailable" for any other 503 / a database outage, else the exception's class name.

Each client runs its calls in one session of the implementation (implementations.interface:
Session): at its user class's isolation level, its queries in reports when the class runs them
(`end_report()` ends the current one; the next query begins the next). Each call's retries (a
command run again after a serialization failure or a deadlock) go to the request event's context
as `retries`: inproc reads them from the session, http from the API's X-Retries header.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, TypeVar
from urllib.parse import urlencode

from geventhttpclient import HTTPClient
from locust.contrib.fasthttp import FastHttpSession

from implementations import registry
from implementations.domain import commands as c
from implementations.domain import queries as q
from implementations.domain.errors import (
    DomainError,
    NotFound,
    NotYetVisible,
    RecoveryConflict,
    TransactionAborted,
    Unavailable,
)
from implementations.interface import Config, Implementation, Session
from implementations.session_headers import (
    ISOLATION_HEADER,
    REPORT_HEADER,
    RETRIES_HEADER,
    ROLE_HEADER,
)
from workloads.config import WorkloadConfig
from workloads.users import OperationError

T = TypeVar("T")
UNAVAILABLE = (NotYetVisible, Unavailable)  # what the API answers 503 to
# 503s counted under their own name: a hot standby cancelling a query is not an outage
OWN_503 = (RecoveryConflict.code,)


class Transport:
    """Lifecycle around a run (start on test_start, stop on test_stop) and clients for users."""

    def start(self) -> None: ...
    def stop(self) -> None: ...
    def client(self, concurrency: int, isolation: str = "read committed", report=False) -> Any:
        """A client for one user: its calls at `isolation`; with `report`, its queries in
        reports."""


def create_transport(config: WorkloadConfig, environment) -> Transport:
    if config.transport == "inproc":
        return InprocTransport(config, environment)
    return HttpTransport(config, environment)


# --- inproc --------------------------------------------------------------------------------------


def _inproc_error(exc: Exception) -> OperationError:
    if isinstance(exc, (DomainError, RecoveryConflict, TransactionAborted)):
        return OperationError(exc.code, exc.reason)
    if isinstance(exc, UNAVAILABLE):
        return OperationError("unavailable", exc.reason)
    return OperationError(type(exc).__name__, str(exc))


class InprocTransport(Transport):
    def __init__(self, config: WorkloadConfig, environment) -> None:
        self.environment = environment
        self.impl: Implementation = registry.create(
            config.impl,
            Config(
                config.write_dsn,
                config.read_dsn or config.write_dsn,
                pool_size=config.pool_size,
                retries=config.retries,
                settings=config.settings,
            ),
        )

    def start(self) -> None:
        self.impl.start()

    def stop(self) -> None:
        self.impl.stop()

    def client(
        self, concurrency: int, isolation: str = "read committed", report=False, role=None
    ) -> InprocClient:
        session = self.impl.session(isolation, report=report, role=role)
        return InprocClient(self.impl, self.environment.events.request, session)


class InprocClient:
    def __init__(self, impl: Implementation, request_event, session: Session) -> None:
        self.impl, self.request_event, self.session = impl, request_event, session

    def end_report(self) -> None:
        try:
            self.session.end_report()
        except Exception as exc:
            raise _inproc_error(exc) from exc

    def _call(self, name: str, work: Callable[[], T]) -> T:
        start, wall = time.perf_counter(), time.time()
        with self.session.active():
            try:
                result, error = work(), None
            except Exception as exc:  # reported, then raised as OperationError
                result, error = None, _inproc_error(exc)
        self.request_event.fire(
            request_type="inproc",
            name=name,
            response_time=(time.perf_counter() - start) * 1000.0,
            response_length=0,
            exception=error,
            context={"retries": self.session.retried},
            start_time=wall,
            url=None,
            response=None,
        )
        if error is not None:
            raise error
        return result

    def place_order(self, name: str, customer_id: int, lines, key: str) -> int:
        return self._call(
            name,
            lambda: self.impl.commands.place_order(
                c.PlaceOrder(customer_id, tuple(c.OrderLine(p, n) for p, n in lines), key)
            ),
        ).order_id

    def health(self, name: str) -> None:
        self._call(name, lambda: None)

    def order_summary(self, name: str, order_id: int) -> None:
        self._call(name, lambda: self.impl.queries.order_summary(order_id))

    def order_visible(self, order_id: int) -> bool:
        try:
            with self.session.active():
                self.impl.queries.order_summary(order_id)
        except NotFound:
            return False
        except Exception as exc:
            raise _inproc_error(exc) from exc
        return True

    def customer_orders(self, name: str, customer_id: int, limit: int) -> None:
        self._call(
            name, lambda: self.impl.queries.customer_orders(q.RecentOrdersQuery(customer_id, limit))
        )

    def search(self, name: str, category, max_price_cents, limit: int) -> None:
        self._call(
            name,
            lambda: self.impl.queries.search_products(
                q.ProductSearch(category, None, max_price_cents, None, limit)
            ),
        )

    def sales_by_category(self, name: str, since: datetime, until: datetime) -> None:
        self._call(name, lambda: self.impl.queries.sales_by_category(q.TimeWindow(since, until)))

    def top_products(self, name: str, since: datetime, until: datetime, limit: int) -> None:
        self._call(
            name,
            lambda: self.impl.queries.top_products(
                q.TopProductsQuery(q.TimeWindow(since, until), limit)
            ),
        )

    def revenue(self, name: str, since: datetime, until: datetime, bucket: str) -> None:
        self._call(
            name,
            lambda: self.impl.queries.revenue_over_time(
                q.RevenueQuery(q.TimeWindow(since, until), bucket)
            ),
        )

    def change_price(self, name: str, product_id: int, price_cents: int, reason: str) -> None:
        self._call(
            name,
            lambda: self.impl.commands.change_product_price(
                c.ChangeProductPrice(product_id, price_cents, reason)
            ),
        )

    def restock(self, name: str, product_id: int, quantity: int) -> None:
        self._call(
            name, lambda: self.impl.commands.restock_product(c.RestockProduct(product_id, quantity))
        )

    def discontinue(self, name: str, product_id: int) -> None:
        self._call(
            name, lambda: self.impl.commands.discontinue_product(c.DiscontinueProduct(product_id))
        )


# --- http ----------------------------------------------------------------------------------------


def _http_error(status: int, body: bytes, transport_error: Exception | None) -> OperationError:
    if status == 0 and transport_error is not None:  # no response: connection refused, timeout
        return OperationError(type(transport_error).__name__, str(transport_error))
    try:
        answer = json.loads(body)
    except ValueError:
        answer = None
    reason = (
        answer.get("reason", "")
        if isinstance(answer, dict)
        else body[:200].decode("utf-8", "replace")
    )
    if status == 503:
        own = answer.get("error") if isinstance(answer, dict) else None
        return OperationError(own if own in OWN_503 else "unavailable", reason)
    if isinstance(answer, dict) and isinstance(answer.get("error"), str):
        return OperationError(answer["error"], reason)
    return OperationError(f"http_{status}", reason)


class HttpTransport(Transport):
    def __init__(self, config: WorkloadConfig, environment) -> None:
        self.environment = environment
        self.host = (config.host or environment.host or "").rstrip("/")
        if not self.host:
            raise ValueError("the http transport needs the service's URL: --host or config host")

    def client(
        self, concurrency: int, isolation: str = "read committed", report=False, role=None
    ) -> HttpClient:
        session = FastHttpSession(
            self.host,
            self.environment.events.request,
            user=None,
            concurrency=concurrency,
            network_timeout=60.0,
            connection_timeout=10.0,
        )
        return HttpClient(
            session,
            HTTPClient.from_url(self.host, concurrency=concurrency, network_timeout=10.0),
            isolation,
            report,
            role,
        )


def _iso(ts: datetime) -> str:
    return ts.isoformat()


class HttpClient:
    """`poller` sends what is not reported to Locust: visibility polls, beginning and ending
    reports."""

    def __init__(
        self,
        session: FastHttpSession,
        poller: HTTPClient,
        isolation: str = "read committed",
        report: bool = False,
        role: str | None = None,
    ) -> None:
        self.session, self.poller = session, poller
        self.isolation, self.report = isolation, report
        self.role = {ROLE_HEADER: role} if role else {}
        self.report_id: str | None = None  # the report the service holds for this client

    def _unreported(self, method: str, path: str, body: Any = None) -> Any:
        try:
            response = self.poller.request(
                method,
                path,
                body=b"" if body is None else json.dumps(body).encode(),
                headers={"Content-Type": "application/json"},
            )
            content = response.read()
        except Exception as exc:
            raise OperationError(type(exc).__name__, str(exc)) from exc
        if not 200 <= response.status_code < 300:
            raise _http_error(response.status_code, content, None)
        return json.loads(content) if content else None

    def _session_headers(self, query: bool) -> dict[str, str]:
        if not (self.report and query):
            return {ISOLATION_HEADER: self.isolation, **self.role}
        if self.report_id is None:
            began = self._unreported("POST", "/reports", {"isolation": self.isolation})
            self.report_id = began["report"]
        return {REPORT_HEADER: self.report_id}

    def end_report(self) -> None:
        if self.report_id is not None:
            report, self.report_id = self.report_id, None
            self._unreported("DELETE", f"/reports/{report}")

    def _send(
        self,
        name: str,
        method: str,
        path: str,
        query: dict | None = None,
        body: Any = None,
        headers: dict | None = None,
    ) -> Any:
        if query:
            path += "?" + urlencode({k: v for k, v in query.items() if v is not None})
        headers = {**(headers or {}), **self._session_headers(method == "GET")}
        with self.session.request(
            method, path, name=name, json=body, headers=headers, catch_response=True
        ) as response:
            status = response.status_code or 0
            retries = response.headers.get(RETRIES_HEADER) if response.headers else None
            response.request_meta["context"]["retries"] = int(retries or 0)
            error = None
            if not 200 <= status < 300:
                error = _http_error(
                    status, response.content or b"", getattr(response, "error", None)
                )
                response.failure(error)
            else:
                response.success()
        if error is not None:
            raise error
        return response.json() if response.content else None

    def place_order(self, name: str, customer_id: int, lines, key: str) -> int:
        body = {
            "customer_id": customer_id,
            "lines": [{"product_id": p, "quantity": n} for p, n in lines],
        }
        return self._send(name, "POST", "/orders", body=body, headers={"Idempotency-Key": key})[
            "order_id"
        ]

    def health(self, name: str) -> None:
        self._send(name, "GET", "/health")

    def order_summary(self, name: str, order_id: int) -> None:
        self._send(name, "GET", f"/orders/{order_id}")

    def order_visible(self, order_id: int) -> bool:
        """GET /orders/{id} without reporting it: True when found, False on 404."""
        try:
            response = self.poller.get(f"/orders/{order_id}", headers=self._session_headers(True))
            body = response.read()
        except Exception as exc:
            raise OperationError(type(exc).__name__, str(exc)) from exc
        if response.status_code == 404:
            return False
        if 200 <= response.status_code < 300:
            return True
        raise _http_error(response.status_code, body, None)

    def customer_orders(self, name: str, customer_id: int, limit: int) -> None:
        self._send(name, "GET", f"/customers/{customer_id}/orders", {"limit": limit})

    def search(self, name: str, category, max_price_cents, limit: int) -> None:
        self._send(
            name,
            "GET",
            "/products/search",
            {"category": category, "max_price_cents": max_price_cents, "limit": limit},
        )

    def sales_by_category(self, name: str, since: datetime, until: datetime) -> None:
        self._send(
            name,
            "GET",
            "/dashboard/sales-by-category",
            {"since": _iso(since), "until": _iso(until)},
        )

    def top_products(self, name: str, since: datetime, until: datetime, limit: int) -> None:
        self._send(
            name,
            "GET",
            "/dashboard/top-products",
            {"since": _iso(since), "until": _iso(until), "limit": limit},
        )

    def revenue(self, name: str, since: datetime, until: datetime, bucket: str) -> None:
        self._send(
            name,
            "GET",
            "/dashboard/revenue",
            {"since": _iso(since), "until": _iso(until), "bucket": bucket},
        )

    def change_price(self, name: str, product_id: int, price_cents: int, reason: str) -> None:
        self._send(
            name,
            "POST",
            f"/products/{product_id}/price",
            body={"new_price_cents": price_cents, "reason": reason},
        )

    def restock(self, name: str, product_id: int, quantity: int) -> None:
        self._send(name, "POST", f"/products/{product_id}/restock", body={"quantity": quantity})

    def discontinue(self, name: str, product_id: int) -> None:
        self._send(name, "POST", f"/products/{product_id}/discontinue")
