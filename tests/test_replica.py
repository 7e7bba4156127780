"""Architectures that read a streaming standby of the write server (reads_standby): a standby that
falls behind is measured as behind, a recovery conflict is its own counted error, and a standby
killed during a run fails the run naming its log, leaving nothing running."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import traceback
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import psycopg
import pytest
from conftest import on_standby, processes_mentioning
from fastapi.testclient import TestClient

from harness.collectors import db_stats
from harness.collectors.replay import ReplaySampler, replay_tables
from harness.deploy.components import ComponentFailed
from harness.postgres.servers import Servers, standby_dsn, standby_server
from harness.postgres.standby import StandbyBehind, primary_position, wait_replayed
from harness.runner.run import RunPlan, run
from implementations import registry
from implementations.api import create_app
from implementations.db import make_engine, read
from implementations.domain import commands as c
from implementations.domain.errors import NotFound, NotYetVisible, RecoveryConflict
from implementations.interface import Config

TRANSPORT_NAMES = """
import json, sys, locust
from implementations.domain.errors import RecoveryConflict
from workloads.transports import _http_error, _inproc_error
error = RecoveryConflict(sys.argv[1])
body = json.dumps({"error": error.code, "reason": error.reason}).encode()
print(_inproc_error(error).error_type, _http_error(503, body, None).error_type)
"""
STANDBY_READERS = [a.name for a in registry.architectures().values() if a.reads_standby]
pytestmark = pytest.mark.skipif(not STANDBY_READERS, reason="no architecture reads a standby")


def _admin(dsn: str) -> psycopg.Connection:
    return psycopg.connect(dsn, autocommit=True)


@pytest.fixture
def replica(servers: Servers, contract_catalog: str):
    """The first standby-reading architecture on the contract catalog, its queries waiting at
    most 0.3 s for a token."""
    config = Config(
        contract_catalog,
        on_standby(servers, contract_catalog),
        pool_size=4,
        read_your_writes_timeout=0.3,
    )
    impl = registry.create(STANDBY_READERS[0], config)
    impl.install()
    impl.start()
    yield impl
    impl.stop()


def test_a_standby_that_falls_behind_is_measured_as_behind(servers: Servers, replica):
    standby = standby_dsn(servers)
    sampler = ReplaySampler(servers.write_dsn, replica.config.read_dsn).start()
    order = c.PlaceOrder(1, (c.OrderLine(1, 1),), "replica-before")
    first = replica.commands.place_order(order)
    assert replica.queries.order_summary(first.order_id, after=first.token).order_id
    with _admin(standby) as conn:
        conn.execute("SELECT pg_wal_replay_pause()")
        try:
            behind = replica.commands.place_order(
                c.PlaceOrder(1, (c.OrderLine(1, 1),), "replica-behind")
            )
            committed = datetime.now(UTC)
            # the explicit wait gives up rather than answer stale; without a token, stale data
            with pytest.raises(NotYetVisible, match="had not caught up"):
                replica.queries.order_summary(behind.order_id, after=behind.token)
            with pytest.raises(NotFound):
                replica.queries.order_summary(behind.order_id)
            # the harness's wait gives up once replay stops advancing, saying how far behind
            with pytest.raises(StandbyBehind, match=r"bytes short of .*\(no replay for the last"):
                wait_replayed(servers.write_dsn, standby, stall=0.5)
            asked = datetime.now(UTC)  # a dashboard query while the standby is 0.5 s+ behind
        finally:
            conn.execute("SELECT pg_wal_replay_resume()")
    wait_replayed(servers.write_dsn, standby)
    assert replica.queries.order_summary(behind.order_id, after=behind.token).order_id
    time.sleep(0.1)
    assert re.fullmatch(r"last replayed commit \d+ ms old", sampler.latest())  # progress line
    samples = sampler.stop()
    queries = pd.DataFrame({"operation": ["dashboard_sales_by_category"], "started_at": [asked]})
    tables = replay_tables(samples, sampler.commits, queries)

    stale_ms = (asked - committed).total_seconds() * 1000
    assert tables["freshness"]["freshness_ms"].iloc[0] >= stale_ms  # not reported fresh
    lag = tables["lag"]
    during = lag[(lag["ts"] > committed) & (lag["ts"] < asked)]
    assert len(during) and (during["events_behind"] >= 1).all()
    assert during["oldest_unapplied_age_ms"].max() >= 400
    # the commit made while paused waited the whole pause for its replay
    assert tables["event_lag"]["lag_ms"].max() >= stale_ms
    assert tables["event_lag"].attrs["never_replayed"] == 0


def test_a_recovery_conflict_is_counted_as_such(servers: Servers, replica):
    standby = standby_dsn(servers)
    read_dsn = replica.config.read_dsn
    engine = make_engine(read_dsn, component="test-conflict", pool_size=1)
    before = db_stats.snapshot(read_dsn)

    def hold(conn) -> None:  # a lock on products, held by the query's transaction for 10 s
        conn.exec_driver_sql("SELECT count(*) FROM products").all()
        conn.exec_driver_sql("SELECT pg_sleep(10)").all()

    # In a second, from another process (this one may be gevent's, once Locust is imported), a
    # lock the standby must replay while the query holds a conflicting one.
    lock = (
        "import sys, time, psycopg\n"
        "time.sleep(1)\n"
        "with psycopg.connect(sys.argv[1], autocommit=True) as conn, conn.transaction():\n"
        "    conn.execute('LOCK TABLE products IN ACCESS EXCLUSIVE MODE')\n"
    )
    with _admin(standby) as conn:
        conn.execute("ALTER SYSTEM SET max_standby_streaming_delay = '100ms'")
        conn.execute("SELECT pg_reload_conf()")
        locker = subprocess.Popen([sys.executable, "-c", lock, replica.config.write_dsn])
        try:
            with pytest.raises(RecoveryConflict) as raised:
                read(engine, hold)
        finally:
            locker.wait(30)
            conn.execute("ALTER SYSTEM RESET max_standby_streaming_delay")
            conn.execute("SELECT pg_reload_conf()")
    engine.dispose()
    error = raised.value
    assert "conflict with recovery" in error.reason
    # counted under its own name by both transports, never as an outage (in a process of its own:
    # importing Locust monkey-patches this one for gevent)
    names = subprocess.run(
        [sys.executable, "-c", TRANSPORT_NAMES, error.reason],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    ).stdout.split()
    assert names == ["recovery_conflict", "recovery_conflict"]

    # the API answers 503 with Retry-After, never 500
    def cancelled(*_args, **_kwargs):
        raise error

    replica.queries.order_summary = cancelled
    with TestClient(create_app(replica), raise_server_exceptions=False) as api:
        response = api.get("/orders/1")
    assert response.status_code == 503 and response.headers["Retry-After"] == "1"
    assert response.json()["error"] == "recovery_conflict"
    # and by the standby, by cause (its statistics arrive within a second or so)
    deadline = time.monotonic() + 10
    while True:
        after = db_stats.snapshot(read_dsn)
        if after["confl_lock"] > before["confl_lock"] or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert after["confl_lock"] - before["confl_lock"] == 1
    assert after["conflicts"] - before["conflicts"] == 1


def test_the_position_waited_for_is_flushed_so_the_standby_can_reach_it(
    servers: Servers, contract_catalog: str
):
    """WAL inserted but not flushed (here an open transaction's update) is not streamed until the
    primary flushes it, which an idle WAL writer can leave for seconds: the position a wait aims
    at is flushed before it is waited for."""
    with _admin(contract_catalog) as open_tx, open_tx.transaction():
        open_tx.execute("UPDATE products SET stock = stock + 1 WHERE id = 1")
        position = primary_position(servers.write_dsn)
        with _admin(servers.write_dsn) as conn:
            assert conn.execute(
                "SELECT pg_current_wal_flush_lsn() >= %s::pg_lsn", (position,)
            ).fetchone()[0]
        wait_replayed(servers.write_dsn, standby_dsn(servers))


def test_killing_the_standby_during_a_run_fails_it_naming_its_log(servers: Servers, tmp_path: Path):
    server = standby_server(servers)
    standby = standby_dsn(servers)  # running
    # A restartpoint first (a checkpoint replayed, then CHECKPOINT on the standby): restarted at
    # the end, the killed standby then replays only this test's WAL, not all the session wrote
    # since it started (a minute and more of the suite's time).
    with _admin(servers.write_dsn) as conn:
        conn.execute("CHECKPOINT")
    wait_replayed(servers.write_dsn, standby)
    with _admin(standby) as conn:
        conn.execute("CHECKPOINT")
    plan = RunPlan(
        impls=STANDBY_READERS[:1],
        transport="http",
        duration=60,
        warmup=1,
        sf=0.01,
        experiment="standby-killed",
        results_root=tmp_path,
        report=False,
    )
    failure: list[BaseException] = []

    def measure() -> None:
        try:
            run(plan, servers, progress=lambda _line: None)
        except BaseException as exc:  # noqa: BLE001 - checked below
            failure.append(exc)

    runner = threading.Thread(target=measure)
    runner.start()
    deadline = time.monotonic() + 180
    while not list(tmp_path.glob("standby-killed/*/raw/*/seconds-*.jsonl")):
        assert runner.is_alive() and time.monotonic() < deadline, failure
        time.sleep(0.2)
    os.kill(server.status().pid, signal.SIGKILL)
    runner.join(120)
    assert not runner.is_alive()

    (error,) = failure
    assert isinstance(error, ComponentFailed) and error.component == "standby", "".join(
        traceback.format_exception(error)
    )
    assert error.log == server.logfile and str(server.logfile) in str(error)
    (run_dir,) = (tmp_path / "standby-killed").iterdir()
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "incomplete" and meta["failed_component"] == "standby"
    assert meta["failed_log"] == str(server.logfile)
    database = meta["impls"][plan.impls[0]]["database"]
    time.sleep(1)  # the killed standby's own processes see their postmaster gone
    assert not processes_mentioning(str(run_dir)), "Locust left running"
    assert not processes_mentioning(database), "the service left running"
    with _admin(servers.write_dsn) as conn:  # the clone was dropped
        assert not conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
        ).fetchone()
    # the next user of the standby gets it back (the rest of the session needs it)
    wait_replayed(servers.write_dsn, standby_dsn(servers))
