"""cqrs-physical while one of its servers is stopped and restarted during a stream of checkouts.

Read server down: checkout keeps working, queries answer 503 with Retry-After, the projector
retries with backoff and catches up when the server returns. Write server down: queries keep
answering from the read models and say how stale they are, commands answer 503 with Retry-After
(never 500, never a hang). Either way no event is lost or applied twice: afterwards the read
models equal a rebuild from the outbox. Called directly, either side on a stopped server raises
Unavailable, never the driver's error.

The tests stop servers, so they run on a pair of their own, never the session's.
"""

from __future__ import annotations

import itertools
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psycopg
import pytest
import sqlalchemy.exc
from background_service import BackgroundService
from conftest import processes_mentioning, table_digest

from harness.deploy.provision import RunDatabases, attached, drop, provision
from harness.postgres.server import EmbeddedServer
from harness.postgres.servers import Servers
from implementations import read_model
from implementations.domain.commands import OrderLine, PlaceOrder, RestockProduct, ShipOrder
from implementations.domain.errors import Unavailable
from implementations.domain.queries import ProductSearch, RecentOrdersQuery
from implementations.domain.results import PlacedOrder
from implementations.interface import Implementation
from implementations.projector.engine import MAX_BACKOFF, MIN_BACKOFF, Projector
from implementations.projector.positions import Position, parse_token
from implementations.projector.status import projection_status

CHECKOUT = Path(__file__).resolve().parents[1]
_PAIRS = itertools.count()
PATIENCE = 60.0  # seconds an awaited state may take before the test gives up (not a measurement)


# --- a server pair of our own ---------------------------------------------------------------------


@dataclass
class OwnServers:
    write: EmbeddedServer
    read: EmbeddedServer
    ports: dict[str, int]

    @property
    def pair(self) -> Servers:
        return Servers(self.write.status().dsn, self.read.status().dsn, origin="given")

    def restart_stopped(self) -> None:
        for server in (self.write, self.read):
            server.start(port=self.ports[server.role])  # a running server is left as it is


@pytest.fixture(scope="module")
def own_servers() -> Iterator[OwnServers]:
    root = CHECKOUT / ".work" / f"tests-outage-{os.getpid()}-{next(_PAIRS)}"
    write, read = EmbeddedServer(root / "write", "write"), EmbeddedServer(root / "read", "read")
    try:
        ports = {server.role: server.start().port for server in (write, read)}
        yield OwnServers(write, read, ports)
    finally:
        for server in (write, read):
            server.remove()
        shutil.rmtree(root, ignore_errors=True)
    assert not processes_mentioning(str(root)), "a server of the outage tests is still running"


# --- the service under test -----------------------------------------------------------------------


class WatchedProjector:
    """A projector on a thread that records each outage it reports (the wait before retrying)."""

    def __init__(self, write_dsn: str, read_dsn: str) -> None:
        self.projector = Projector(write_dsn, read_dsn, poll_interval=0.05)
        self.waits: list[float] = []
        self.stop = threading.Event()
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._run, name="outage-projector", daemon=True)

    def _run(self) -> None:
        try:
            self.projector.run(self.stop, on_outage=lambda _exc, wait: self.waits.append(wait))
        except BaseException as exc:  # noqa: BLE001 - reported on join
            self.error = exc
        finally:
            self.projector.close()

    def start(self) -> WatchedProjector:
        self.thread.start()
        return self

    def join(self) -> None:
        self.stop.set()
        self.thread.join(PATIENCE)
        assert not self.thread.is_alive(), "the projector did not stop"
        if self.error is not None:
            raise AssertionError(f"the projector failed: {self.error!r}") from self.error


@dataclass
class Reply:
    sent: dict
    during_outage: bool  # the server was down from before the request was sent until it answered
    after_outage: bool  # sent once the server had been restarted
    status: int | None  # None: no answer (a transport error or a timeout)
    headers: dict[str, str]
    body: dict | list | None
    error: str | None = None


class Outage:
    """One server's outage as the test makes it: "down" once stop() has returned, "restarting"
    while start() runs, "up" before the outage and once start() has returned."""

    def __init__(self) -> None:
        self.phase, self.generation = "up", 0

    def begin(self, server: EmbeddedServer) -> None:
        server.stop()
        self.phase, self.generation = "down", self.generation + 1

    def end(self, server: EmbeddedServer, port: int) -> None:
        self.phase = "restarting"
        server.start(port=port)
        self.phase = "up"

    def snapshot(self) -> tuple[str, int]:
        return self.phase, self.generation


class CheckoutStream:
    """A thread placing one order after another through the API until stopped."""

    def __init__(self, base_url: str, outage: Outage, customers: list[int], products: list[int]):
        self.base_url, self.outage = base_url, outage
        self.customers, self.products = customers, products
        self.replies: list[Reply] = []
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, name="checkout-stream", daemon=True)

    def _run(self) -> None:
        with httpx.Client(base_url=self.base_url, timeout=PATIENCE) as client:
            for i in itertools.count():
                if self.stop.is_set():
                    return
                order = {
                    "customer_id": self.customers[i % len(self.customers)],
                    "lines": [
                        {"product_id": self.products[i % len(self.products)], "quantity": 1 + i % 3}
                    ],
                }
                phase, generation = sent = self.outage.snapshot()
                after = phase == "up" and generation > 0
                try:
                    resp = client.post(
                        "/orders", json=order, headers={"Idempotency-Key": f"stream-{i}"}
                    )
                except httpx.HTTPError as exc:
                    self.replies.append(Reply(order, False, after, None, {}, None, repr(exc)))
                    continue
                during = phase == "down" and self.outage.snapshot() == sent
                self.replies.append(
                    Reply(order, during, after, resp.status_code, dict(resp.headers), _json(resp))
                )
                self.stop.wait(0.02)  # leave the service some room; not part of any assertion

    def start(self) -> CheckoutStream:
        self.thread.start()
        return self

    def join(self) -> None:
        self.stop.set()
        if self.thread.ident is not None:
            self.thread.join(PATIENCE * 2)
        assert not self.thread.is_alive(), "a checkout never answered"

    def count(self, status: int, when: Callable[[Reply], bool] = lambda _r: True) -> int:
        return sum(r.status == status and when(r) for r in list(self.replies))

    def placed(self) -> list[dict]:
        """Each placed order's answer with the customer and product it was placed for."""
        return [
            {
                **r.body,
                "customer_id": r.sent["customer_id"],
                "product_id": r.sent["lines"][0]["product_id"],
            }
            for r in list(self.replies)
            if r.status == 201
        ]


def _json(resp: httpx.Response) -> dict | list | None:
    try:
        return resp.json()
    except ValueError:
        return None


@dataclass
class Stack:
    servers: OwnServers
    dbs: RunDatabases
    impl: Implementation
    projector: WatchedProjector
    api: httpx.Client
    stream: CheckoutStream
    outage: Outage = field(default_factory=Outage)

    @property
    def dsns(self) -> tuple[str, str]:
        return self.dbs.write_dsn, self.dbs.read_dsn


def _active_catalog(write_dsn: str) -> tuple[list[int], list[int]]:
    with psycopg.connect(write_dsn) as conn:
        customers = [r[0] for r in conn.execute("SELECT id FROM customers ORDER BY id LIMIT 3")]
        products = [
            r[0]
            for r in conn.execute(
                "SELECT id FROM products WHERE status = 'active' ORDER BY id LIMIT 3"
            )
        ]
    return customers, products


@pytest.fixture
def stack(own_servers: OwnServers) -> Iterator[Stack]:
    """cqrs-physical provisioned on our own pair, a projector thread, the API over HTTP, and a
    checkout stream ready to start. Everything is stopped, and both servers are up again, after."""
    own_servers.restart_stopped()
    dbs = provision("cqrs-physical", own_servers.pair, sf=0.01, seed=7, progress=lambda _m: None)
    projector = None
    try:
        assert dbs.separate, "the read models must live on the read server"
        with (
            attached("cqrs-physical", dbs, pool_size=8) as impl,
            BackgroundService(impl) as base_url,
            httpx.Client(base_url=base_url, timeout=PATIENCE) as api,
        ):
            projector = WatchedProjector(*impl.projection.dsns).start()
            customers, products = _active_catalog(dbs.write_dsn)
            for product in products:
                restocked = api.post(f"/products/{product}/restock", json={"quantity": 100_000})
                assert restocked.status_code == 200, restocked.text
            outage = Outage()
            stream = CheckoutStream(base_url, outage, customers, products)
            yield Stack(own_servers, dbs, impl, projector, api, stream, outage)
            stream.join()
            projector.join()
    finally:
        if projector is not None and projector.thread.is_alive():  # a failed test: stop it quietly
            projector.stop.set()
            projector.thread.join(PATIENCE)
        own_servers.restart_stopped()
        drop(own_servers.pair, dbs)


# --- helpers --------------------------------------------------------------------------------------


def _eventually(condition: Callable[[], object], what: str, timeout: float = PATIENCE):
    deadline = time.monotonic() + timeout
    while not (value := condition()):
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        time.sleep(0.05)
    return value


def _scalar(dsn: str, query: str):
    with psycopg.connect(dsn) as conn:
        return conn.execute(query).fetchone()[0]


def _ids(dsn: str, query: str) -> set[int]:
    with psycopg.connect(dsn) as conn:
        return {row[0] for row in conn.execute(query)}


def _head(write_dsn: str) -> Position:
    with psycopg.connect(write_dsn) as conn:
        tx, pos = conn.execute("""
            SELECT tx_id::text, position FROM outbox
            ORDER BY outbox.tx_id DESC, outbox.position DESC LIMIT 1""").fetchone()
    return Position(int(tx), pos)


def _assert_caught_up_and_equal_to_rebuild(stack: Stack) -> None:
    """Checkpoint at the outbox head, every event applied once, read models equal a rebuild."""
    write_dsn, read_dsn = stack.dsns
    status = projection_status(write_dsn, read_dsn)
    assert status.checkpoint == _head(write_dsn).token()
    assert (status.events_behind, status.events_held_back) == (0, 0), status
    events = _scalar(write_dsn, "SELECT count(*) FROM outbox")
    assert status.events_applied == events, "an event applied twice or not at all"
    assert _ids(read_dsn, "SELECT order_id FROM rm_orders") == _ids(
        write_dsn, "SELECT id FROM orders"
    )
    live = table_digest(read_dsn, read_model.TABLES)
    with Projector(write_dsn, read_dsn) as projector:
        assert projector.try_lock(), "no projector may be running during the rebuild"
        assert projector.rebuild() == events
    assert table_digest(read_dsn, read_model.TABLES) == live


def _during(reply: Reply) -> bool:
    return reply.during_outage


def _after(reply: Reply) -> bool:
    return reply.after_outage


def _wait_for_checkouts(stack: Stack, count: int, when: Callable[[Reply], bool] = lambda _r: True):
    _eventually(lambda: stack.stream.count(201, when) >= count, f"{count} successful checkouts")


def _sides(stack: Stack) -> dict[str, str]:
    resp = stack.api.get("/status")
    assert resp.status_code == 200, resp.text
    return resp.json()["sides"]


def _read_your_write(stack: Stack, placed: dict) -> httpx.Response:
    return stack.api.get(f"/orders/{placed['order_id']}", params={"after": placed["token"]})


def _caught_up(stack: Stack, last: dict) -> bool:
    status = projection_status(*stack.dsns)
    applied = parse_token(status.checkpoint) >= parse_token(last["token"])
    return applied and status.events_behind == 0


def _assert_status_recovered(stack: Stack) -> None:
    status = stack.api.get("/status").json()
    assert status["sides"] == {"write": "up", "read": "up"}
    assert status["projection"]["events_behind"] == 0, status
    assert status["projection"]["projector_active"], status


def _today() -> dict[str, str]:
    now = datetime.now(UTC)
    return {
        "since": (now - timedelta(days=1)).isoformat(),
        "until": (now + timedelta(days=1)).isoformat(),
    }


def _assert_unavailable(resp: httpx.Response) -> None:
    assert resp.status_code == 503, resp.text
    assert resp.headers.get("Retry-After"), "a 503 must say when to retry"
    assert resp.json()["error"] == "unavailable"


def _assert_backoff(waits: list[float]) -> None:
    assert waits, "the projector never noticed the outage"
    assert waits == [min(MIN_BACKOFF * 2**i, MAX_BACKOFF) for i in range(len(waits))]


# --- the outages ----------------------------------------------------------------------------------


def test_read_server_down_checkout_keeps_working_and_the_projector_catches_up(stack):
    read, port = stack.servers.read, stack.servers.ports["read"]
    stack.stream.start()
    _wait_for_checkouts(stack, 3)
    first = stack.stream.placed()[0]
    assert _read_your_write(stack, first).status_code == 200
    assert _sides(stack) == {"write": "up", "read": "up"}

    stack.outage.begin(read)
    _wait_for_checkouts(stack, 5, _during)
    for path in (
        f"/orders/{first['order_id']}",
        f"/customers/{first['customer_id']}/orders",
        "/products/search",
    ):
        resp = stack.api.get(path)
        _assert_unavailable(resp)
        assert resp.headers["X-Write-Side"] == "up"
    status = stack.api.get("/status").json()
    assert status["sides"] == {"write": "up", "read": "down"}
    assert status["projection"] is None
    _eventually(lambda: len(stack.projector.waits) >= 2, "the projector to retry")
    stack.outage.end(read, port)

    _wait_for_checkouts(stack, 3, _after)
    stack.stream.join()
    assert [r.status for r in stack.stream.replies if r.status != 201] == [], "a checkout failed"
    last = stack.stream.placed()[-1]
    _eventually(lambda: _caught_up(stack, last), "the projector to catch up")
    resp = _read_your_write(stack, last)  # the first query after the outage
    assert resp.status_code == 200, resp.text
    assert resp.json()["total_cents"] == last["total_cents"]
    _assert_status_recovered(stack)
    stack.projector.join()
    _assert_backoff(stack.projector.waits)
    _assert_caught_up_and_equal_to_rebuild(stack)


def test_write_server_down_queries_serve_stale_and_commands_answer_503(stack):
    write, port = stack.servers.write, stack.servers.ports["write"]
    stack.stream.start()
    _wait_for_checkouts(stack, 3)
    before = stack.stream.placed()[-1]
    assert _read_your_write(stack, before).status_code == 200
    assert _sides(stack) == {"write": "up", "read": "up"}

    stack.outage.begin(write)
    _eventually(lambda: stack.stream.count(503, _during) >= 5, "503s during the outage")
    _eventually(lambda: len(stack.projector.waits) >= 2, "the projector to retry")
    assert _sides(stack) == {"write": "down", "read": "up"}  # as of the projector's last batch
    as_of = _scalar(stack.dbs.read_dsn, "SELECT last_source_commit FROM projection_checkpoint")
    summary = _read_your_write(stack, before)
    assert summary.status_code == 200, summary.text
    assert summary.json()["total_cents"] == before["total_cents"]
    top = stack.api.get("/dashboard/top-products", params=_today())
    assert top.json(), "the dashboard answers from the read models"
    for resp in (
        summary,
        top,
        stack.api.get(f"/customers/{before['customer_id']}/orders"),
        stack.api.get("/products/search"),
    ):
        assert resp.status_code == 200, resp.text
        assert resp.headers["X-Write-Side"] == "down"
        assert datetime.fromisoformat(resp.headers["X-Read-Models-As-Of"]) == as_of
    _assert_unavailable(stack.api.post(f"/orders/{before['order_id']}/ship"))
    _assert_unavailable(
        stack.api.post(f"/products/{before['product_id']}/restock", json={"quantity": 1})
    )
    status = stack.api.get("/status").json()
    assert status["sides"] == {"write": "down", "read": "up"}
    assert status["projection"] is None
    assert datetime.fromisoformat(status["read_models_as_of"]) == as_of
    stack.outage.end(write, port)

    _wait_for_checkouts(stack, 3, _after)
    stack.stream.join()
    replies = stack.stream.replies
    assert [r for r in replies if r.status not in (201, 503)] == [], "only 201 or 503, never 500"
    during = [r for r in replies if r.during_outage]
    assert during and {r.status for r in during} == {503}
    for reply in during:
        assert reply.headers.get("retry-after") and reply.body["error"] == "unavailable"
    after = [(r.status, r.body) for r in replies if r.after_outage and r.status != 201]
    assert after == [], "a checkout failed after the write server was back"
    last = stack.stream.placed()[-1]
    _eventually(lambda: _caught_up(stack, last), "the projector to catch up")
    resp = _read_your_write(stack, last)
    assert resp.status_code == 200, resp.text
    _eventually(  # the side watch looks every 0.5 s
        lambda: _read_your_write(stack, last).headers["X-Write-Side"] == "up",
        "the API to see the write side back",
    )
    _assert_status_recovered(stack)
    stack.projector.join()
    _assert_backoff(stack.projector.waits)
    _assert_caught_up_and_equal_to_rebuild(stack)


def _read_outage_and_recovery(stack: Stack, key: str) -> list[float]:
    """Stop the read server until the projector has retried three times, restart it, place an
    order and wait until it is projected; the projector's waits during this outage."""
    read, port = stack.servers.read, stack.servers.ports["read"]
    seen = len(stack.projector.waits)
    stack.outage.begin(read)
    _eventually(lambda: len(stack.projector.waits) >= seen + 3, "the projector to retry")
    stack.outage.end(read, port)
    order = {
        "customer_id": stack.stream.customers[0],
        "lines": [{"product_id": stack.stream.products[0], "quantity": 1}],
    }
    placed = stack.api.post("/orders", json=order, headers={"Idempotency-Key": key})
    assert placed.status_code == 201, placed.text
    _eventually(lambda: _caught_up(stack, placed.json()), "the projector to catch up")
    return stack.projector.waits[seen:]


def test_each_outage_is_retried_from_the_shortest_wait_again(stack):
    """The backoff starts over once the projector works again: a projector that rode out one
    outage must not begin the next one at the longer waits the first one reached."""
    first = _read_outage_and_recovery(stack, "first")
    second = _read_outage_and_recovery(stack, "second")
    stack.projector.join()
    _assert_backoff(first)
    _assert_backoff(second)
    _assert_caught_up_and_equal_to_rebuild(stack)


# --- the persistence edge: one error for a server that cannot serve -------------------------------


@dataclass
class Bare:
    servers: OwnServers
    impl: Implementation
    customer: int
    product: int
    placed: PlacedOrder


@pytest.fixture
def bare(own_servers: OwnServers) -> Iterator[Bare]:
    """cqrs-physical on our own pair, called directly (no service, no projector), with an order
    placed and the query side used, so that each side's pool holds a connection to lose."""
    own_servers.restart_stopped()
    dbs = provision("cqrs-physical", own_servers.pair, sf=0.01, seed=7, progress=lambda _m: None)
    try:
        with attached("cqrs-physical", dbs, pool_size=2) as impl:
            (customer, *_), (product, *_) = _active_catalog(dbs.write_dsn)
            impl.commands.restock_product(RestockProduct(product, 1000))
            placed = impl.commands.place_order(
                PlaceOrder(customer, (OrderLine(product, 1),), "edge")
            )
            assert impl.queries.search_products(ProductSearch()), "the read models answer"
            yield Bare(own_servers, impl, customer, product, placed)
    finally:
        own_servers.restart_stopped()
        drop(own_servers.pair, dbs)


def _raises_unavailable(call: Callable[[], object]) -> None:
    """`call` raises Unavailable, translated from the driver's error (not the error itself)."""
    with pytest.raises(Unavailable) as raised:
        call()
    assert raised.value.reason.startswith("database unavailable: "), raised.value.reason
    assert isinstance(raised.value.__cause__, psycopg.Error | sqlalchemy.exc.SQLAlchemyError)


def test_commands_on_a_stopped_write_server_raise_unavailable(bare):
    bare.servers.write.stop()
    commands = bare.impl.commands
    # First the pooled connection, lost, on the psycopg connection under SQLAlchemy's
    # (db.driver: the checkout's statements); then a new connection, refused, through SQLAlchemy.
    _raises_unavailable(
        lambda: commands.place_order(
            PlaceOrder(bare.customer, (OrderLine(bare.product, 1),), "edge-down")
        )
    )
    _raises_unavailable(lambda: commands.restock_product(RestockProduct(bare.product, 1)))
    _raises_unavailable(lambda: commands.ship_order(ShipOrder(bare.placed.order_id)))
    assert bare.impl.queries.search_products(ProductSearch()), "the read side is not affected"


def test_queries_on_a_stopped_read_server_raise_unavailable(bare):
    bare.servers.read.stop()
    queries = bare.impl.queries
    # The pooled connection, lost, in the token's wait (db.driver): Unavailable, not NotYetVisible;
    # then new connections, refused, through SQLAlchemy.
    _raises_unavailable(
        lambda: queries.order_summary(bare.placed.order_id, after=bare.placed.token)
    )
    _raises_unavailable(lambda: queries.search_products(ProductSearch()))
    _raises_unavailable(lambda: queries.customer_orders(RecentOrdersQuery(bare.customer)))
    assert bare.impl.commands.restock_product(RestockProduct(bare.product, 1)), "commands work"
