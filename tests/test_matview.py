"""Architectures with a refresher (materialized views refreshed in the background): the age a
dashboard query between refreshes reports, and a refresher killed during a run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest

from harness.collectors.lag import refreshes, view_freshness
from harness.postgres.servers import READ_DSN_ENV, WRITE_DSN_ENV, Servers
from harness.results.validate import validate_run
from implementations import registry
from implementations.domain import commands as c
from implementations.domain import queries as q
from tests.conftest import still_running, until_measuring
from workloads.spec import DASHBOARD_QUERIES

REFRESHED = registry.refreshed()


@pytest.mark.parametrize("name", REFRESHED)
def test_a_query_between_refreshes_reads_the_last_refresh_and_reports_its_age(
    name, start_on_contract
):
    impl = start_on_contract(name)
    now = datetime.now(UTC)
    window = q.TimeWindow(now - timedelta(hours=1), now + timedelta(minutes=2))
    records = [r.__dict__ for r in impl.refresher.refresh()]
    before = impl.queries.revenue_over_time(q.RevenueQuery(window, "hour"))
    placed = impl.commands.place_order(c.PlaceOrder(1, (c.OrderLine(1, 1),), "matview-age"))
    time.sleep(0.2)  # so the query starts measurably after the refresh ended
    started = time.time()
    between = impl.queries.revenue_over_time(q.RevenueQuery(window, "hour"))
    assert between == before  # the order is not in the view yet: the answer is the last refresh's
    views = {op: impl.refresher.reads[m] for op, m in DASHBOARD_QUERIES.items()}
    queries = pd.DataFrame(
        {
            "operation": ["dashboard_revenue"],
            "started_at": pd.to_datetime([started], unit="s", utc=True),
        }
    )
    last = next(r for r in records if r["view"] == views["dashboard_revenue"])
    age = view_freshness(refreshes(records), queries, views)["freshness_ms"].iloc[0]
    assert age == pytest.approx((started - last["started_at"]) * 1000, abs=0.01)
    assert age >= (started - last["ended_at"]) * 1000 >= 200

    again = [r.__dict__ for r in impl.refresher.refresh()]  # refresh: the order is in
    after = impl.queries.revenue_over_time(q.RevenueQuery(window, "hour"))
    assert sum(p.revenue_cents for p in after) - sum(p.revenue_cents for p in before) == (
        placed.total_cents
    )
    later = pd.DataFrame(
        {
            "operation": ["dashboard_revenue"],
            "started_at": pd.to_datetime([time.time()], unit="s", utc=True),
        }
    )
    newest = next(r for r in again if r["view"] == views["dashboard_revenue"])
    age = view_freshness(refreshes(records + again), later, views)["freshness_ms"].iloc[0]
    assert 0 < age < (time.time() - newest["started_at"]) * 1000


def test_a_refresher_killed_during_a_run_fails_the_run_naming_its_log(
    servers: Servers, tmp_path: Path
):
    env = {**os.environ, WRITE_DSN_ENV: servers.write_dsn, READ_DSN_ENV: servers.read_dsn}
    command = [sys.executable, "-m", "harness", "run", "--impl", REFRESHED[0], "--sf", "0.01"]
    command += ["--duration", "120", "--warmup", "1", "--transport", "inproc", "--no-report"]
    command += ["--refresh-interval", "0.5", "--results", str(tmp_path), "--experiment", "killed"]
    proc = subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        seen, children = until_measuring(proc)
        refresher = [p for p in children if "refresh" in p.cmdline()]
        assert len(refresher) == 1, seen
        refresher[0].kill()
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode != 0, seen + out
    assert not (alive := still_running(children)), f"left running: {alive}"
    (run_dir,) = (tmp_path / "killed").iterdir()
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "incomplete" and meta["failed_component"] == "refresher"
    log = Path(meta["failed_log"])
    log = log if log.is_absolute() else run_dir / log
    assert log.name == f"{REFRESHED[0]}-refresher.log" and log.is_file()
    assert str(log.name) in out and "refresher exited" in out, out
    assert validate_run(run_dir) == []
