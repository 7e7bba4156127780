"""The reconciliation after a run: every read-model row recomputed from the write model."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from harness.analysis.load import Run
from harness.postgres.servers import Servers
from harness.runner.reconcile import READ_MODELS, reconcile
from harness.runner.run import Frames, ImplRun, RunPlan
from harness.runner.summary import drifted
from implementations import contract, registry
from implementations.interface import Implementation

TABLES = [model.table for model in READ_MODELS]


@pytest.fixture(params=registry.projected())
def caught_up(request: pytest.FixtureRequest, start_on_contract) -> Implementation:
    """A CQRS implementation after the contract scenario (orders placed, shipped and cancelled,
    a price changed, a product discontinued), its projection caught up."""
    impl = start_on_contract(request.param)
    contract.run_scenario(impl)
    assert impl.projection.wait_caught_up(timeout=30) is not None
    return impl


def test_caught_up_read_models_match_the_write_model_on_every_table(caught_up: Implementation):
    with psycopg.connect(caught_up.projection.target_dsn, autocommit=True) as conn:
        # All-zero aggregate rows (every order of their minute cancelled) count as absent.
        for zero in (
            "rm_revenue_minute VALUES ('2000-01-01', 0, 0)",
            "rm_product_sales_minute VALUES (1, '2000-01-01', 0, 0)",
            "rm_category_sales_minute VALUES ('office', '2000-01-01', 0, 0, 0)",
        ):
            conn.execute(f"INSERT INTO {zero}")
    checks = reconcile(*caught_up.projection.dsns)
    assert [c.check for c in checks] == TABLES
    assert all(c.matched and c.phase == "after" for c in checks), checks
    assert all(int(c.detail.split()[0]) > 0 for c in checks), checks  # every table has rows


@pytest.mark.parametrize(
    "corruption, table, shown",
    [
        (
            "UPDATE rm_products SET price_cents = price_cents + 1 WHERE product_id = 2",
            "rm_products",
            ["(product_id=2)", "price_cents=800,", "price_cents=801,"],
        ),
        (
            "UPDATE rm_category_sales_minute SET units = units + 7 WHERE category = 'office'",
            "rm_category_sales_minute",
            ["(category=office, minute=", "units=2,", "units=9,"],
        ),
        (
            "DELETE FROM rm_order_lines WHERE line_no = 2",
            "rm_order_lines",
            ["line_no=2)", "got absent"],
        ),
    ],
)
def test_a_corrupted_read_model_row_is_a_mismatch_naming_its_table_and_key(
    caught_up: Implementation, corruption: str, table: str, shown: list[str]
):
    with psycopg.connect(caught_up.projection.target_dsn, autocommit=True) as conn:
        conn.execute(corruption)
    checks = {c.check: c for c in reconcile(*caught_up.projection.dsns)}
    assert [name for name, c in checks.items() if not c.matched] == [table]
    detail = checks[table].detail
    assert all(text in detail for text in shown), detail


def test_drifted_read_models_mark_the_run_without_failing_it(
    caught_up: Implementation, servers: Servers, tmp_path: Path
):
    with psycopg.connect(caught_up.projection.target_dsn, autocommit=True) as conn:
        conn.execute("UPDATE rm_revenue_minute SET orders = orders + 1")
    impl, frames, lines = caught_up.name, Frames(), []
    turn = ImplRun(RunPlan(impls=[impl]), servers, impl, tmp_path, frames, lines.append)
    turn._reconcile(*caught_up.projection.dsns)

    assert turn.info["reconciliation"]["tables"] == len(TABLES)
    assert turn.info["reconciliation"]["mismatches"] == 1
    assert any("rm_revenue_minute" in w for w in turn.info["warnings"]), turn.info["warnings"]
    rows = frames.table("verification")
    assert list(rows["phase"].unique()) == ["after"] and set(rows["impl"]) == {impl}
    matched = rows.set_index("check")["matched"].to_dict()
    assert matched == {table: table != "rm_revenue_minute" for table in TABLES}
    run = Run(tmp_path, {"experiment": "e", "impls": {impl: turn.info, "crud": {}}})
    (line,) = drifted([run])
    assert line.startswith(f"READ MODELS DRIFTED: {impl} (e/") and "1 of 7" in line
