"""`cqrs-bench run`: short real runs of every architecture through each transport, and Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psutil
import pytest

from harness.results.validate import validate_run
from harness.runner.run import RunPlan, run
from harness.servers import READ_DSN_ENV, WRITE_DSN_ENV, Servers
from implementations import registry

CQRS = {"cqrs-logical", "cqrs-physical"}
SF = 0.01


def _table(run_dir: Path, name: str) -> pd.DataFrame:
    return pd.read_parquet(run_dir / f"{name}.parquet")


@pytest.mark.parametrize("transport", ["inproc", "http"])
def test_a_short_run_of_every_architecture_gives_a_valid_plausible_results_directory(
    servers: Servers, tmp_path: Path, transport: str
):
    plan = RunPlan(impls=registry.names(), transport=transport, duration=4, warmup=2, sf=SF,
                   experiment=f"test-{transport}", results_root=tmp_path,
                   report=transport == "http")  # fmt: skip
    run_dir = run(plan, servers, progress=lambda _line: None)

    assert validate_run(run_dir) == []
    if plan.report:  # the report of the run, with its charts
        report = (run_dir / "report" / "report.md").read_text()
        assert "## Decision record" in report and (run_dir / "report" / "latency_cdf.png").is_file()
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "complete"
    assert set(meta["impls"]) == set(registry.names())

    summary = _table(run_dir, "latency_summary")
    for impl in registry.names():
        checkout = summary[(summary.impl == impl) & (summary.operation == "checkout")
                           & (summary.kind == "service")]  # fmt: skip
        assert len(checkout) == 1 and checkout["count"].iloc[0] > 0, impl
        assert 0 < checkout["p50_ms"].iloc[0] <= checkout["p99_ms"].iloc[0] <= checkout["max_ms"].iloc[0]
        dashboards = summary[(summary.impl == impl) & summary.operation.str.startswith("dashboard_")]
        assert dashboards["count"].sum() > 0, impl
        assert (_table(run_dir, "verification").query("impl == @impl")["matched"]).all()
        assert (run_dir / "locust" / f"{impl}_stats.csv").is_file()

    latency = _table(run_dir, "latency")
    assert (latency.loc[latency["count"] > 0, "p50_ms"] > 0).all()
    assert set(latency["phase"]) >= {"warmup", "measure"}

    # Projection lag and freshness exist for CQRS only, and are non-negative.
    for table, column in (("event_lag", "lag_ms"), ("freshness", "freshness_ms"), ("lag", "events_behind")):
        frame = _table(run_dir, table)
        assert set(frame["impl"]) == CQRS, table
        assert (frame[column] >= 0).all(), table
    # Active sessions were sampled on the write server for every architecture, and on the read
    # server for the physical one; CPU was measured for the servers and the load generator.
    waits = _table(run_dir, "waits")
    assert set(waits["impl"]) == set(registry.names())
    assert set(waits.query("impl == 'cqrs-physical'")["server"]) == {"write", "read"}
    resources = _table(run_dir, "resources")
    components = set(resources.query("impl == 'crud'")["component"])
    assert {"write_server", "locust", "runner"} <= components
    if transport == "http":
        assert "service" in components
    stats = _table(run_dir, "db_stats")
    commits = stats[(stats.stat == "xact_commit") & (stats.server == "write")]
    assert set(commits["impl"]) == set(registry.names()) and (commits["delta"] > 0).all()
    assert len(_table(run_dir, "statements")) > 0


def _descendants(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


def test_ctrl_c_stops_every_process_and_keeps_an_incomplete_result(servers: Servers, tmp_path: Path):
    env = {**os.environ, WRITE_DSN_ENV: servers.write_dsn, READ_DSN_ENV: servers.read_dsn}
    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "run", "--impl", "cqrs-logical", "--sf", str(SF),
         "--duration", "120", "--warmup", "1", "--transport", "http", "--results", str(tmp_path),
         "--experiment", "interrupted"],
        env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
    )  # fmt: skip
    try:
        seen, children = [], []
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            seen.append(line)
            if "measure" in line and "req/s" in line:  # the load is running and measured
                children = _descendants(proc.pid)
                break
            assert line or proc.poll() is None, "".join(seen)
        assert children, "never started measuring:\n" + "".join(seen)
        proc.send_signal(signal.SIGINT)
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, "".join(seen) + out
    alive = [p for p in children if p.is_running() and p.status() != psutil.STATUS_ZOMBIE]
    assert not alive, f"left running: {[p.cmdline() for p in alive]}"

    (run_dir,) = (tmp_path / "interrupted").iterdir()
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "incomplete" and meta["incomplete_reason"] == "interrupted"
    assert validate_run(run_dir) == []  # an incomplete run is still a well-formed one
    latency = _table(run_dir, "latency")
    assert latency.query("operation == 'checkout'")["count"].sum() > 0  # what was measured is kept
