"""Sessions (implementations.interface.Session): isolation levels, retried serialization failures
and the typed error when retries run out, and reports holding one snapshot, on real PostgreSQL."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
from fastapi.testclient import TestClient

from implementations.api import create_app
from implementations.domain import commands as c
from implementations.domain import queries as q
from implementations.domain.errors import SerializationFailure
from implementations.interface import Config, Implementation
from tests.conftest import started

PRODUCT = 1


def blocked_restock(impl: Implementation, dsn: str, isolation: str) -> tuple[object, int]:
    """A restock of PRODUCT in a session at `isolation`, started while another transaction holds
    an update of the same row and committed once the restock waits for it: at REPEATABLE READ
    and above the restock's snapshot predates that commit, so its update fails with a
    serialization failure. Returns (what the restock returned or raised, its session's retries)."""
    session = impl.session(isolation)

    def restock() -> object:
        with session.active():
            return impl.commands.restock_product(c.RestockProduct(PRODUCT, 5))

    return blocked(dsn, restock), session.retried


def blocked(
    dsn: str, call: Callable[[], object], while_waiting: Callable[[], None] = lambda: None
) -> object:
    """What `call` returned or raised, run while another transaction holds an update of
    PRODUCT, committed once the call waits for its row lock (and `while_waiting` has run)."""
    outcome: list[object] = []

    def run() -> None:
        try:
            outcome.append(call())
        except Exception as exc:  # noqa: BLE001  handed to the test
            outcome.append(exc)

    with psycopg.connect(dsn) as other:
        other.execute("UPDATE products SET stock = stock + 1 WHERE id = %s", (PRODUCT,))
        worker = threading.Thread(target=run)
        worker.start()
        deadline = time.monotonic() + 10
        while not _waiting_on_lock(dsn):
            assert time.monotonic() < deadline, "the restock never waited for the row lock"
            time.sleep(0.02)
        while_waiting()
        other.commit()
    worker.join(timeout=20)
    return outcome[0]


def _waiting_on_lock(dsn: str) -> bool:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return (
            conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database()"
            ).fetchone()[0]
            > 0
        )


def stock(dsn: str) -> int:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute("SELECT stock FROM products WHERE id = %s", (PRODUCT,)).fetchone()[0]


def test_a_serialization_failure_is_retried_and_counted(crud: Implementation) -> None:
    dsn = crud.config.write_dsn
    before = stock(dsn)
    result, retried = blocked_restock(crud, dsn, "serializable")
    assert not isinstance(result, Exception), result
    assert retried == 1
    assert stock(dsn) == before + 1 + 5  # the other's update, then the retried restock, once


def test_read_committed_waits_and_needs_no_retry(crud: Implementation) -> None:
    result, retried = blocked_restock(crud, crud.config.write_dsn, "read committed")
    assert not isinstance(result, Exception), result
    assert retried == 0


def test_exhausted_retries_give_the_typed_error(contract_catalog: str) -> None:
    config = Config(contract_catalog, contract_catalog, pool_size=4, retries=0)
    for impl in started("crud", config):
        before = stock(contract_catalog)
        result, retried = blocked_restock(impl, contract_catalog, "repeatable read")
        assert isinstance(result, SerializationFailure), result
        assert result.code == "serialization_failure"
        assert "could not serialize" in result.reason
        assert retried == 0
        assert stock(contract_catalog) == before + 1  # the restock wrote nothing


def test_a_report_holds_one_snapshot_until_it_ends(crud: Implementation) -> None:
    now = datetime.now(UTC)
    window = q.TimeWindow(now - timedelta(hours=1), now + timedelta(hours=1))
    report = crud.session("read committed", report=True)
    assert report.query_isolation == "repeatable read"

    def orders() -> int:
        with report.active():
            return sum(row.orders for row in crud.queries.sales_by_category(window))

    first = orders()
    crud.commands.place_order(c.PlaceOrder(1, (c.OrderLine(PRODUCT, 1),), "report-test"))
    assert orders() == first  # the report's snapshot predates the order
    report.end_report()
    assert orders() == first + 1  # the next report sees it


def test_a_bad_isolation_level_is_refused(crud: Implementation) -> None:
    with pytest.raises(ValueError, match="isolation must be one of"):
        crud.session("snapshot")


def test_the_api_carries_isolation_retries_and_the_typed_error(contract_catalog: str) -> None:
    config = Config(contract_catalog, contract_catalog, pool_size=4, retries=0)
    for impl in started("crud", config):
        with TestClient(create_app(impl), raise_server_exceptions=False) as api:

            def restock(isolation: str):
                return lambda: api.post(
                    f"/products/{PRODUCT}/restock",
                    json={"quantity": 5},
                    headers={"X-Isolation": isolation},
                )

            waited = blocked(contract_catalog, restock("read committed"))
            assert (waited.status_code, waited.headers["X-Retries"]) == (200, "0")
            failed = blocked(contract_catalog, restock("serializable"))
            assert failed.status_code == 409, failed.text
            assert failed.json()["error"] == "serialization_failure"
            assert failed.headers["Retry-After"] == "1"
            bad = api.get("/health", headers={"X-Isolation": "snapshot"})
            assert bad.status_code == 422
            assert "isolation must be one of" in bad.json()["reason"]
            assert "\n" not in bad.json()["reason"]


def test_a_report_over_http_holds_one_snapshot(crud: Implementation) -> None:
    now = datetime.now(UTC)
    params = {
        "since": (now - timedelta(hours=1)).isoformat(),
        "until": (now + timedelta(hours=1)).isoformat(),
    }
    with TestClient(create_app(crud), raise_server_exceptions=False) as api:
        report = api.post("/reports", json={"isolation": "repeatable read"}).json()["report"]

        def orders() -> int:
            answer = api.get(
                "/dashboard/sales-by-category", params=params, headers={"X-Report": report}
            )
            assert answer.status_code == 200, answer.text
            return sum(row["orders"] for row in answer.json())

        first = orders()
        api.post("/orders", json={"customer_id": 1, "lines": [{"product_id": 1, "quantity": 1}]})
        assert orders() == first
        assert api.delete(f"/reports/{report}").status_code == 204
        gone = api.get("/dashboard/revenue", params=params, headers={"X-Report": report})
        assert (gone.status_code, gone.json()["error"]) == (404, "not_found")
        assert api.post("/reports", json={"isolation": "snapshot"}).status_code == 422


def _names_waiting(dsn: str) -> list[str]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return [
            row[0]
            for row in conn.execute(
                "SELECT application_name FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                "AND datname = current_database()"
            )
        ]


def test_a_role_names_its_commands_sessions_while_they_run(crud: Implementation) -> None:
    """A merchandiser's restock, waiting on a row lock, is seen under the merchandiser's name
    (what the waits sampler records as the component of a waiting or blocking session); once it
    committed, its pooled connection has its engine's name back."""
    dsn = crud.config.write_dsn
    session = crud.session(role="merchandiser")
    seen: list[list[str]] = []

    def restock() -> object:
        with session.active():
            return crud.commands.restock_product(c.RestockProduct(PRODUCT, 5))

    # looked at while the restock waits (before the lock is released: a watcher of its own
    # could miss a wait that ends as soon as it is seen)
    result = blocked(dsn, restock, while_waiting=lambda: seen.append(_names_waiting(dsn)))
    assert not isinstance(result, Exception), result
    assert seen and seen[0] == ["cqrs-bench:crud:merchandiser"], seen
    with psycopg.connect(dsn, autocommit=True) as conn:
        names = {r[0] for r in conn.execute("SELECT application_name FROM pg_stat_activity")}
    assert "cqrs-bench:crud:merchandiser" not in names and "cqrs-bench:crud:commands" in names
    with pytest.raises(ValueError, match="role must be a lowercase name"):
        crud.session(role="Robert'); DROP TABLE products;--")
