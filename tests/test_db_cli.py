"""`cqrs-bench db up | status | down` as a user runs it, on real servers in a private work dir."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness.postgres import binaries as pg_binaries

CHECKOUT = Path(__file__).resolve().parents[1]


@pytest.fixture
def home():
    path = CHECKOUT / ".work" / f"test-db-cli-{os.getpid()}"
    yield path
    subprocess.run(_cli("db", "down", "--purge"), env=_env(path), capture_output=True)
    shutil.rmtree(path, ignore_errors=True)


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-c", "from harness.cli.app import main; main()", *args]


def _env(home: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CQRS_BENCH_")}
    return {**env, "CQRS_BENCH_HOME": str(home), **extra}


def run(home: Path, *args: str, **extra: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        _cli(*args), env=_env(home, **extra), capture_output=True, text=True, timeout=120
    )


def test_up_status_down(home):
    first = run(home, "db", "up")
    assert first.returncode == 0, first.stderr
    assert first.stdout.count(" started ") == 2
    status = run(home, "db", "status").stdout
    assert status.count("running (pid") == 2
    assert "PostgreSQL 1" in status and "postgresql://postgres@127.0.0.1:" in status
    again = run(home, "db", "up")
    assert again.stdout.count("already running") == 2
    down = run(home, "db", "down")
    assert down.returncode == 0 and down.stdout.count("stopped") == 2
    assert run(home, "db", "status").stdout.count("stopped") == 2


def test_status_of_given_servers(home, servers):
    out = run(home, "db", "status", "--write-dsn", servers.write_dsn).stdout
    assert out.count("running (given)") == 2  # the read side defaults to the write server
    bad = run(home, "db", "status", "--write-dsn", "postgresql://postgres@127.0.0.1:1/postgres")
    assert "unreachable" in bad.stdout


def test_missing_binaries_say_how_to_fix(home):
    result = run(home, "db", "up", CQRS_BENCH_PG_BINDIR="/nonexistent")
    assert result.returncode == 1
    assert "apt-get install postgresql" in result.stderr
    assert "--write-dsn" in result.stderr
    assert "Traceback" not in result.stderr


def test_nothing_found_anywhere_names_where_it_looked(monkeypatch):
    monkeypatch.delenv("CQRS_BENCH_PG_BINDIR", raising=False)
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(pg_binaries, "VERSIONED_GLOBS", ("/nonexistent/*/bin",))
    with pytest.raises(pg_binaries.PostgresNotFound, match="Install a PostgreSQL server"):
        pg_binaries.find_bindir()


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="needs two CPUs")
def test_up_pins_each_server_to_its_cpus(home):
    result = run(home, "db", "up", "--write-cpus", "0", "--read-cpus", "1")
    assert result.returncode == 0, result.stderr
    pids = [int(p) for p in re.findall(r"running \(pid (\d+)\)", run(home, "db", "status").stdout)]
    assert [os.sched_getaffinity(pid) for pid in pids] == [{0}, {1}]


def test_cpus_that_do_not_exist_are_refused(home):
    result = run(home, "db", "up", "--write-cpus", "4096")
    assert result.returncode == 1 and "not all available" in result.stderr
