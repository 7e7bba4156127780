"""The checkout benchmark on real PostgreSQL: the generated pgbench script runs the checkout
statements, and every number either side reports matches what the database gained."""

from __future__ import annotations

import psycopg
import pytest

from harness.bench import checkout as bench_checkout
from harness.bench.errors import BenchError
from harness.postgres.servers import Servers
from implementations.write_model import checkout

SF, SEED = 0.01, 42


def _quiet(_message: str) -> None:
    pass


def test_script_is_generated_from_the_checkout_statements(dataset_clone: str) -> None:
    script = bench_checkout.pgbench_script(bench_checkout.activate_catalog(dataset_clone))
    for statement in (checkout.INSERT_ORDER, checkout.TAKE_STOCK, checkout.INSERT_LINES):
        first_line = statement.strip().splitlines()[0].strip()
        assert first_line in script
    for name in ("product_ids", "quantities", "idempotency_key"):
        assert f":{name}" not in script
    assert script.count(";") == 4  # BEGIN, two statements, COMMIT; \gset ends the INSERT


def test_both_sides_place_exactly_the_orders_they_count(dataset_clone: str) -> None:
    result = bench_checkout.measure(
        dataset_clone, impl="crud", clients=2, duration=2, rounds=1, progress=_quiet
    )
    python, pgbench = result.measurements
    assert (python.side, pgbench.side) == ("python", "pgbench")
    assert python.committed > 0 and pgbench.committed > 0
    assert python.errors == {} and pgbench.errors == {}
    assert python.db_orders == python.committed + python.warmup
    assert pgbench.db_orders == pgbench.committed
    assert result.ratio > 0

    with psycopg.connect(dataset_clone) as conn:
        placed = dict(
            conn.execute("""
            SELECT split_part(idempotency_key, '-', 1), count(*) FROM orders
            WHERE idempotency_key LIKE 'py-%' OR idempotency_key LIKE 'pgb-%' GROUP BY 1
        """).fetchall()
        )
        wrong = conn.execute("""
            SELECT o.id FROM orders o LEFT JOIN order_lines l ON l.order_id = o.id
            WHERE o.idempotency_key LIKE 'pgb-%'
            GROUP BY o.id
            HAVING count(l.order_id) <> 3 OR count(DISTINCT l.product_id) <> 3
                OR sum(l.quantity) <> 3
                OR o.total_cents <> coalesce(sum(l.quantity * l.unit_price_cents), -1)
        """).fetchall()
    assert placed == {"py": python.db_orders, "pgb": pgbench.committed}
    assert wrong == []


def test_a_count_the_database_does_not_confirm_is_refused(dataset_clone: str) -> None:
    before = bench_checkout.snapshot_counts(dataset_clone)
    with pytest.raises(BenchError, match="gained 0 orders"):
        bench_checkout.check_orders(dataset_clone, before, 1, "python", "py-")
    assert bench_checkout.check_orders(dataset_clone, before, 0, "python", "py-") == 0


def test_run_drops_its_clone(servers: Servers) -> None:
    result = bench_checkout.run(
        write_dsn=servers.write_dsn,
        clients=1,
        duration=1,
        rounds=1,
        sf=SF,
        seed=SEED,
        progress=_quiet,
    )
    assert [m.side for m in result.measurements] == ["python", "pgbench"]
    with psycopg.connect(servers.write_dsn) as conn:
        left = conn.execute(
            "SELECT datname FROM pg_database WHERE datname LIKE 'bench\\_checkout\\_%'"
        ).fetchall()
    assert left == []
