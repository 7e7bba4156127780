"""`cqrs-bench project run | status | rebuild` on a real cqrs-logical database."""

from __future__ import annotations

import json
import signal
import subprocess
import time

import pytest
from test_db_cli import _cli, _env

from implementations import registry
from implementations.domain.commands import OrderLine, PlaceOrder
from implementations.interface import Config


@pytest.fixture
def logical_db(contract_catalog, tmp_path):
    impl = registry.create("cqrs-logical", Config(contract_catalog, contract_catalog))
    impl.install()
    impl.start()
    yield impl
    impl.stop()


def _project(home, *args):
    return subprocess.run(
        _cli("project", *args), env=_env(home), capture_output=True, text=True, timeout=120
    )


def _status(home, dsn) -> dict:
    result = _project(home, "status", "--impl", "cqrs-logical", "--write-dsn", dsn, "--json")
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_rebuild_then_status(logical_db, tmp_path):
    dsn = logical_db.config.write_dsn
    assert _status(tmp_path, dsn)["events_behind"] == 6  # the contract catalog's events
    rebuilt = _project(tmp_path, "rebuild", "--impl", "cqrs-logical", "--write-dsn", dsn)
    assert rebuilt.returncode == 0, rebuilt.stderr
    assert "rebuilt from 6 events" in rebuilt.stdout
    status = _status(tmp_path, dsn)
    assert status["checkpoint"] == status["head"] and status["events_behind"] == 0


def test_run_projects_new_events_and_stops_on_sigterm(logical_db, tmp_path):
    dsn = logical_db.config.write_dsn
    proc = subprocess.Popen(
        _cli(
            "project", "run", "--impl", "cqrs-logical", "--write-dsn", dsn, "--poll-interval", "0.1"
        ),
        env=_env(tmp_path),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        placed = logical_db.commands.place_order(PlaceOrder(1, (OrderLine(1, 1),), "cli-run"))
        deadline = time.monotonic() + 30
        while _status(tmp_path, dsn)["checkpoint"] != placed.token:
            assert time.monotonic() < deadline, "the projector never applied the order"
            time.sleep(0.2)
        assert (
            logical_db.queries.order_summary(placed.order_id, after=placed.token).total_cents
            == 2500
        )
        assert _status(tmp_path, dsn)["projector_active"] is True
        rebuild = _project(tmp_path, "rebuild", "--impl", "cqrs-logical", "--write-dsn", dsn)
        assert rebuild.returncode == 1 and "a projector is running" in rebuild.stderr
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert "projector stopped" in out or proc.returncode == 128 + signal.SIGTERM


def test_status_without_servers_says_what_to_do(tmp_path):
    result = _project(tmp_path, "status", "--impl", "cqrs-logical")
    assert result.returncode == 1
    assert "cqrs-bench db up" in result.stderr


def test_crud_has_no_projection(logical_db, tmp_path):
    result = _project(
        tmp_path, "status", "--impl", "crud", "--write-dsn", logical_db.config.write_dsn
    )
    assert result.returncode == 1 and "crud has no projection" in result.stderr


def test_top_level_rebuild_is_project_rebuild(logical_db, tmp_path):
    result = subprocess.run(
        _cli("rebuild", "--impl", "cqrs-logical", "--write-dsn", logical_db.config.write_dsn),
        env=_env(tmp_path),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0 and "rebuilt from 6 events" in result.stdout
