"""Sessions (implementations.interface.Session): isolation levels, retried serialization failures
and the typed error when retries run out, and reports holding one snapshot, on real PostgreSQL."""

from __future__ import annotations

import threading
import time
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

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
    outcome: list[object] = []

    def restock() -> None:
        with session.active():
            try:
                outcome.append(impl.commands.restock_product(c.RestockProduct(PRODUCT, 5)))
            except Exception as exc:  # noqa: BLE001  handed to the test
                outcome.append(exc)

    with psycopg.connect(dsn) as other:
        other.execute("UPDATE products SET stock = stock + 1 WHERE id = %s", (PRODUCT,))
        worker = threading.Thread(target=restock)
        worker.start()
        deadline = time.monotonic() + 10
        while not _waiting_on_lock(dsn):
            assert time.monotonic() < deadline, "the restock never waited for the row lock"
            time.sleep(0.02)
        other.commit()
    worker.join(timeout=20)
    return outcome[0], session.retried


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
