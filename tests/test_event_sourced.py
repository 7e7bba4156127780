"""cqrs-es beyond the contract: optimistic concurrency on hot streams, the notification log's
commit order, rebuilds, time travel, snapshots and idempotency on the event store."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import psycopg
import pytest
from fastapi.testclient import TestClient

from harness.runner.reconcile import reconcile
from implementations import registry
from implementations.api import create_app
from implementations.contract import run_scenario
from implementations.cqrs_es.aggregates import PRODUCT, Product, stream_id
from implementations.cqrs_es.store import EVENTS_TABLE, Store
from implementations.cqrs_es.time_travel import state_at
from implementations.db import Session
from implementations.domain import commands as c
from implementations.domain.errors import InvalidInput, NotFound, OutOfStock, VersionConflict
from implementations.interface import Config, Implementation
from implementations.projector.background import ProjectorThread

NAME = "cqrs-es"


@pytest.fixture
def es(contract_catalog: str) -> Iterator[Implementation]:
    """cqrs-es installed and started on the contract catalog, its history projected; no projector
    running (each test drives its own)."""
    impl = registry.create(NAME, Config(contract_catalog, contract_catalog, pool_size=24))
    impl.install()
    with impl.projection.projector() as projector:
        projector.catch_up()
    impl.start()
    yield impl
    impl.stop()


def _events(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute(f"SELECT count(*) FROM {EVENTS_TABLE}").fetchone()[0]


def _digest(dsn: str) -> dict[str, str]:
    tables = ("rm_customers", "rm_products", "rm_orders", "rm_order_lines", "rm_revenue_minute")
    with psycopg.connect(dsn) as conn:
        return {
            t: conn.execute(
                f"SELECT md5(coalesce(string_agg(r::text, '|' ORDER BY r::text), '')) FROM {t} r"
            ).fetchone()[0]
            for t in tables
        }


def test_concurrent_checkouts_of_the_last_units_never_oversell_and_count_their_retries(es):
    product, stock, buyers = 3, 4, 12
    es.commands.restock_product(c.RestockProduct(product, stock))  # now: 10 + 4 units
    have = es.store.repository.get(stream_id(PRODUCT, product)).stock
    start = threading.Barrier(buyers)
    retried = []

    def buy(i: int) -> str:
        session = Session(retries=20)
        with session.active():
            start.wait()
            try:
                es.commands.place_order(c.PlaceOrder(1, (c.OrderLine(product, 1),), f"last-{i}"))
                outcome = "sold"
            except OutOfStock:
                outcome = "out of stock"
            except VersionConflict:
                outcome = "conflict"
            retried.append(session.retried)
            return outcome

    for _round in range(-(-have // buyers) + 1):  # until the stock is gone
        with ThreadPoolExecutor(buyers) as pool:
            outcomes = list(pool.map(buy, range(_round * buyers, (_round + 1) * buyers)))
        if "out of stock" in outcomes:
            break
    after = es.store.repository.get(stream_id(PRODUCT, product))
    with psycopg.connect(es.config.write_dsn) as conn:
        taken = conn.execute(
            f"SELECT count(*) FROM {EVENTS_TABLE} WHERE originator_id = %s AND topic LIKE %s",
            (stream_id(PRODUCT, product), "%StockTaken"),
        ).fetchone()[0]
    assert after.stock == 0 and taken == have  # every unit sold exactly once: none oversold
    assert "out of stock" in outcomes
    assert sum(retried) > 0  # buyers racing for one stream conflicted, and it was counted


def test_a_conflict_that_outlasts_the_retries_is_a_version_conflict_and_records_nothing(es):
    before = _events(es.config.write_dsn)
    real_save = es.store.save

    def always_behind(*aggregates):  # another command always appended first
        product = es.store.repository.get(stream_id(PRODUCT, 1))
        product.restock(1, product.stock + 1)
        real_save(product)
        return real_save(*aggregates)

    es.store.save = always_behind
    session = Session(retries=2)
    with session.active(), pytest.raises(VersionConflict):
        es.commands.change_product_price(c.ChangeProductPrice(1, 999, "race"))
    assert session.retried == 2
    # only the interloper's three restocks were recorded, not the price change
    assert _events(es.config.write_dsn) == before + 3
    assert es.store.repository.get(stream_id(PRODUCT, 1)).price_cents != 999


def test_the_log_is_in_commit_order_a_later_recording_waits_for_an_earlier_one(es):
    """The library locks the table before a recording takes its notification ids: a recording
    that began later cannot commit a lower id, so the projector never passes over a gap that
    fills later (the out-of-order commits the outbox needs its transaction horizon for)."""
    dsn = es.config.write_dsn
    holder = psycopg.connect(dsn)  # records a customer and holds its transaction open
    holder.execute(f"LOCK TABLE {EVENTS_TABLE} IN EXCLUSIVE MODE")
    holder.execute(
        f"""INSERT INTO {EVENTS_TABLE} (originator_id, originator_version, topic, state)
            VALUES (es_stream(1, 77), 1, %s, convert_to(%s, 'UTF8'))""",
        (
            "implementations.cqrs_es.aggregates:Customer.Registered",
            '{"timestamp": {"_type_": "datetime_iso", "_data_": "2026-01-01T00:00:00+00:00"},'
            ' "originator_topic": "implementations.cqrs_es.aggregates:Customer",'
            ' "customer_id": 77, "name": "Late Commit", "email": "late@example.com"}',
        ),
    )
    with ThreadPoolExecutor(1) as pool:
        later = pool.submit(
            es.commands.place_order, c.PlaceOrder(1, (c.OrderLine(2, 1),), "after-the-holder")
        )
        with es.projection.projector() as projector:
            assert projector.step().events == []  # neither is readable yet
            assert not later.done()  # the later recording waits for the lock
            holder.commit()
            placed = later.result(timeout=30)
            projector.catch_up()
    holder.close()
    with psycopg.connect(dsn) as conn:
        ids = dict(
            conn.execute(
                f"SELECT topic, notification_id FROM {EVENTS_TABLE} WHERE notification_id >"
                f" (SELECT max(notification_id) - 10 FROM {EVENTS_TABLE})"
            ).fetchall()
        )
        customer = conn.execute("SELECT name FROM rm_customers WHERE customer_id = 77").fetchone()
        order = conn.execute(
            "SELECT count(*) FROM rm_orders WHERE order_id = %s", (placed.order_id,)
        ).fetchone()
    assert ids["implementations.cqrs_es.aggregates:Customer.Registered"] < int(
        placed.token.split(":")[1]
    )
    assert customer == ("Late Commit",) and order == (1,)
    assert all(check.matched for check in reconcile(dsn, dsn))


def test_a_rebuild_from_the_event_store_equals_the_live_projection(es):
    with es.projection.projector() as projector:
        running = ProjectorThread(es.projection.projector(poll_interval=0.05)).start()
        try:
            run_scenario(es)
            assert es.projection.wait_caught_up(timeout=30) is not None
        finally:
            running.join()
        live = _digest(es.config.write_dsn)
        rebuilt = projector.rebuild()
    assert rebuilt == _events(es.config.write_dsn)  # every event of the log was read once
    assert _digest(es.config.write_dsn) == live


def test_time_travel_gives_the_state_at_a_version_and_at_a_time(es):
    first = state_at(es.store, "product", 1)
    changed = es.commands.change_product_price(c.ChangeProductPrice(1, 4321, "sale"))
    now = state_at(es.store, "product", 1)
    assert (now.state["price_cents"], now.version) == (4321, first.version + 1)
    back = state_at(es.store, "product", 1, version=first.version)
    assert back.state == first.state and back.latest_version == now.version
    just_before = state_at(es.store, "product", 1, at=now.recorded_at - timedelta(microseconds=1))
    assert just_before.version == first.version and just_before.state["price_cents"] != 4321
    assert changed.price_cents == 4321
    order = es.commands.place_order(c.PlaceOrder(1, (c.OrderLine(2, 1),), "travel"))
    es.commands.ship_order(c.ShipOrder(order.order_id))
    assert state_at(es.store, "order", order.order_id, version=1).state["status"] == "placed"
    assert state_at(es.store, "order", order.order_id).state["status"] == "shipped"
    with pytest.raises(NotFound):
        state_at(es.store, "order", order.order_id, version=3)
    with pytest.raises(NotFound):
        state_at(es.store, "order", 10**12)
    with pytest.raises(InvalidInput):
        state_at(es.store, "customer", 1)


def test_snapshots_give_the_state_the_whole_stream_gives(es):
    for i in range(12):
        es.commands.place_order(c.PlaceOrder(1, (c.OrderLine(2, 1),), f"snap-{i}"))
    snapshotting = Store(es.config.write_dsn, pool_size=2, snapshots=5, cache=0)
    plain = Store(es.config.write_dsn, pool_size=2, snapshots=0, cache=0)
    try:
        stream = stream_id(PRODUCT, 2)
        snapshotting.take_snapshot(stream)
        with_snapshot: Product = snapshotting.repository.get(stream)
        folded: Product = plain.repository.get(stream)
    finally:
        snapshotting.close()
        plain.close()
    assert vars(with_snapshot) == vars(folded)


def test_the_same_idempotency_key_returns_the_first_order_and_records_nothing(es):
    cmd = c.PlaceOrder(1, (c.OrderLine(1, 1), c.OrderLine(2, 1)), "once")
    first = es.commands.place_order(cmd)
    events = _events(es.config.write_dsn)
    es.commands.discontinue_product(c.DiscontinueProduct(2))  # the replay must not care
    events += 1
    again = es.commands.place_order(cmd)
    assert again.replayed and (again.order_id, again.total_cents) == (
        first.order_id,
        first.total_cents,
    )
    assert _events(es.config.write_dsn) == events


def test_every_store_session_names_its_component_for_the_wait_attribution(es):
    pool = es.store.recorder.datastore.pool  # the first are opened while the store is made
    held = [pool.getconn() for _ in range(pool.max_size)]
    try:
        names = {
            conn.execute("SHOW application_name").fetchone()["application_name"] for conn in held
        }
    finally:
        for conn in held:
            pool.putconn(conn)
    assert names == {f"cqrs-bench:{NAME}:commands"}


def test_the_api_and_the_cli_travel_in_time_and_others_say_why_they_cannot(es, crud):
    changed = es.commands.change_product_price(c.ChangeProductPrice(2, 777, "api"))
    with TestClient(create_app(es), raise_server_exceptions=False) as api:
        now = api.get("/history/product/2")
        first = api.get("/history/product/2", params={"version": 1})
        assert now.status_code == first.status_code == 200
        assert now.json()["state"]["price_cents"] == changed.price_cents == 777
        assert first.json()["version"] == 1 and first.json()["state"]["price_cents"] != 777
        missing = api.get("/history/order/999999")
        assert missing.status_code == 404 and "does not exist" in missing.json()["reason"]
        assert api.get("/history/customer/1").status_code == 422
    with TestClient(create_app(crud), raise_server_exceptions=False) as api:
        refused = api.get("/history/product/2")
        assert refused.status_code == 404 and "event-sourced" in refused.json()["reason"]
    cli = [sys.executable, "-m", "harness", "state", "product", "2", "--json"]
    dsn = ["--write-dsn", es.config.write_dsn, "--read-dsn", es.config.write_dsn]
    shown = subprocess.run([*cli, "--version", "1", *dsn], capture_output=True, text=True)
    assert shown.returncode == 0, shown.stderr
    assert json.loads(shown.stdout)["state"] == first.json()["state"]
    wrong = subprocess.run([*cli, "--impl", "crud", *dsn], capture_output=True, text=True)
    assert wrong.returncode == 1 and "event-sourced" in wrong.stderr
    assert "Traceback" not in wrong.stderr and len(wrong.stderr.strip().splitlines()) == 1


def test_its_settings_are_recorded_and_are_what_its_store_runs_with(es):
    assert es.settings() == {
        "library": es.settings()["library"],
        "snapshot_interval": 50,
        "aggregate_cache": 10_000,
    }
    assert es.settings()["library"].startswith("eventsourcing 9.")
    given = {"snapshot_interval": 0, "aggregate_cache": 0}
    plain = registry.create(NAME, Config(es.config.write_dsn, es.config.write_dsn, settings=given))
    plain.start()
    try:
        assert {k: plain.settings()[k] for k in given} == given
        assert plain.store.snapshotting_intervals == {} and plain.store.repository.cache is None
        assert plain.commands.place_order(
            c.PlaceOrder(1, (c.OrderLine(1, 1),), "plain")
        ).total_cents
    finally:
        plain.stop()
    with pytest.raises(ValueError, match="no setting 'snapshots'.*snapshot_interval"):
        registry.create(
            NAME, Config(es.config.write_dsn, es.config.write_dsn, settings={"snapshots": 1})
        )


def test_every_stream_of_the_converted_history_loads_and_matches_the_dataset(dataset_clone):
    impl = registry.create(NAME, Config(dataset_clone, dataset_clone, pool_size=2))
    impl.install()  # on a clone whose history was moved already: its times are not moved twice
    with impl.projection.projector() as projector:
        projector.catch_up()
    with psycopg.connect(dataset_clone) as conn:
        moved = conn.execute(
            "SELECT count(*) FROM orders o JOIN rm_orders r ON r.order_id = o.id"
            " WHERE r.placed_at IS DISTINCT FROM o.placed_at"
        ).fetchone()
    assert moved == (0,)
    impl.start()
    try:
        with psycopg.connect(dataset_clone) as conn:
            streams = [
                r[0] for r in conn.execute(f"SELECT DISTINCT originator_id FROM {EVENTS_TABLE}")
            ]
            products = conn.execute(
                "SELECT id, price_cents, stock, status, version FROM products ORDER BY id"
            ).fetchall()
            orders = dict(conn.execute("SELECT id, status FROM orders").fetchall())
        loaded = [impl.store.repository.get(stream) for stream in streams]
    finally:
        impl.stop()
    kinds = {type(a).__name__ for a in loaded}
    assert kinds == {"Customer", "Product", "Order", "Checkout"}
    folded = sorted(
        (a.product_id, a.price_cents, a.stock, a.status, a.row_version)
        for a in loaded
        if isinstance(a, Product)
    )
    assert folded == products
    assert {a.order_id: a.status for a in loaded if type(a).__name__ == "Order"} == orders
