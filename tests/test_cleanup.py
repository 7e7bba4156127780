"""Commands that start their own servers leave nothing running: on success, error, Ctrl-C, SIGTERM."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from conftest import processes_mentioning
from test_db_cli import _cli, _env

from harness.postgres.server import free_port

CHECKOUT = Path(__file__).resolve().parents[1]


STARTED: list[subprocess.Popen] = []


@pytest.fixture
def home():
    path = CHECKOUT / ".work" / f"test-cleanup-{os.getpid()}-{time.monotonic_ns()}"
    yield path
    while STARTED:  # a test that failed half-way still stops the command it started
        proc = STARTED.pop()
        if proc.poll() is None:
            proc.terminate()
            proc.wait(timeout=60)
    leftover = processes_mentioning(str(path))
    if leftover:  # remove them before failing, so a failing test leaves nothing behind either
        subprocess.run(_cli("db", "down"), env=_env(path), capture_output=True, timeout=120)
    shutil.rmtree(path, ignore_errors=True)
    assert not leftover, "a test left servers running"


def _start(home: Path, *args: str) -> subprocess.Popen:
    proc = subprocess.Popen(
        _cli(*args), env=_env(home), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    STARTED.append(proc)
    return proc


def _wait_for_line(proc: subprocess.Popen, needle: str, timeout: float = 120) -> str:
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line and proc.poll() is not None:
            break
        seen.append(line)
        if needle in line:
            return line
    raise AssertionError(f"never printed {needle!r}:\n{''.join(seen)}")


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["ctrl-c", "sigterm"])
def test_serve_stops_everything_it_started_on_a_signal(home, sig):
    port = free_port()
    proc = _start(home, "serve", "--sf", "0.01", "--port", str(port))
    _wait_for_line(proc, f"Uvicorn running on http://127.0.0.1:{port}")
    assert (
        httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).json()["implementation"] == "crud"
    )
    assert processes_mentioning(str(home)), (
        "the throwaway servers should be running while it serves"
    )
    proc.send_signal(sig)
    proc.wait(timeout=60)
    assert not processes_mentioning(str(home))
    assert not list((home / "servers").glob("run-*"))


def test_an_error_after_servers_started_stops_them(home):
    result = subprocess.run(
        _cli("serve", "--sf", "-1", "--port", str(free_port())),
        env=_env(home),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 1
    assert "error:" in result.stderr and "sf" in result.stderr
    assert "Traceback" not in result.stderr
    assert not processes_mentioning(str(home))


def test_a_killed_commands_servers_are_removed_by_the_next_command(home):
    proc = _start(home, "serve", "--sf", "0.01", "--port", str(free_port()))
    _wait_for_line(proc, "Uvicorn running on")
    proc.kill()  # SIGKILL: no chance to clean up
    proc.wait(timeout=30)
    assert processes_mentioning(str(home)), "pg_ctl-started servers outlive a SIGKILLed command"
    down = subprocess.run(
        _cli("db", "down"), env=_env(home), capture_output=True, text=True, timeout=120
    )
    assert "removed orphaned servers" in down.stdout
    assert not processes_mentioning(str(home))


def test_run_end_to_end_on_throwaway_servers_leaves_nothing_behind(home):
    result = subprocess.run(
        _cli(
            "run",
            "--impl",
            "crud",
            "--sf",
            "0.01",
            "--duration",
            "2",
            "--warmup",
            "1",
            "--transport",
            "inproc",
            "--results",
            str(home / "results"),
        ),
        env=_env(home),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "checkout/s" in result.stdout and "results (complete):" in result.stdout
    assert not processes_mentioning(str(home))
    assert not list((home / "servers").glob("run-*"))


if __name__ == "__main__":
    sys.exit(pytest.main([__file__]))
