"""The benchmark suites run, and the regression gate fails when an implementation gets slower.

Each test runs pytest on benchmarks/ in a subprocess, as a developer would; every such run starts
its own throwaway servers. The fast mode runs every benchmark once with its checks, so the suites
cannot rot; the gate test saves a baseline, then reruns with one query made slower through the
benchmarks' test hook (CQRS_BENCH_TEST_SLOWDOWN, honoured only by benchmarks/conftest.py) and
expects pytest-benchmark's compare-fail to fail the run.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from implementations import registry

REPO = Path(__file__).resolve().parents[1]
QUERIES = (
    "order_summary",
    "customer_orders",
    "sales_by_category",
    "top_products",
    "revenue_over_time",
    "search_products",
)
COMMANDS = (
    "place_order",
    "cancel_order",
    "ship_order",
    "change_product_price",
    "restock_product",
    "discontinue_product",
)
SLOWED = "benchmarks/test_queries.py::test_search_products[crud]"
GATE_OPTIONS = ("--bench-sf=0.01", "--benchmark-max-time=0.3", "--benchmark-min-rounds=20")


def run_benchmarks(*args: str, env: dict[str, str] | None = None) -> tuple[int, str]:
    """pytest on the benchmarks in a subprocess: its exit status and output."""
    done = subprocess.run(
        [sys.executable, "-m", "pytest", *args, "-p", "no:cacheprovider", "-q"],
        cwd=REPO,
        env={**os.environ, **(env or {})},
        capture_output=True,
        text=True,
        timeout=240,
    )
    return done.returncode, done.stdout + done.stderr


def expected_operations() -> set[tuple[str | None, str]]:
    expected = {(None, "dataset_load"), (None, "dataset_clone")}
    for name in registry.names():
        expected |= {(name, op) for op in QUERIES + COMMANDS}
        if registry.architecture(name).projection:
            expected.add((name, "projector_batch_apply"))
    return expected


def test_fast_mode_runs_every_benchmark_with_its_checks(tmp_path):
    report = tmp_path / "fast.json"
    status, output = run_benchmarks("benchmarks", "--bench-fast", f"--benchmark-json={report}")
    assert status == 0, output[-4000:]
    saved = json.loads(report.read_text())
    seen = [
        (b["extra_info"]["implementation"], b["extra_info"]["operation"])
        for b in saved["benchmarks"]
    ]
    assert sorted(seen, key=str) == sorted(expected_operations(), key=str)  # each exactly once
    info = saved["cqrs_bench"]
    assert (info["sf"], info["seed"], info["fast"], info["test_slowdown"]) == (0.01, 42, True, None)
    for role in ("write", "read"):
        server = info["postgres"][role]
        assert server["server_version_num"] >= 150000
        assert {
            "shared_buffers",
            "synchronous_commit",
            "fsync",
            "plan_cache_mode",
            "track_commit_timestamp",
        } <= server["settings"].keys()
    assert len(info["git"]["commit"]) == 40
    assert saved["machine_info"]["cqrs_bench"] == {"sf": 0.01, "seed": 42, "fast": True}


def test_the_gate_fails_when_a_query_gets_slower(tmp_path):
    storage = f"--benchmark-storage=file://{tmp_path / 'storage'}"
    status, output = run_benchmarks(SLOWED, *GATE_OPTIONS, storage, "--benchmark-save=base")
    assert status == 0, output[-4000:]
    assert len(list((tmp_path / "storage").glob("*/0001_base.json"))) == 1

    report = tmp_path / "slowed.json"
    status, output = run_benchmarks(
        SLOWED,
        *GATE_OPTIONS,
        storage,
        "--benchmark-compare",
        "--benchmark-compare-fail=median:100%",
        f"--benchmark-json={report}",
        env={"CQRS_BENCH_TEST_SLOWDOWN": "queries.search_products=0.05"},
    )
    assert status != 0, output[-4000:]
    assert "Performance has regressed" in output
    regressed = output.split("Performance has regressed:", 1)[1]
    assert "test_search_products[crud]" in regressed and "median" in regressed
    slowed = json.loads(report.read_text())  # a run with the hook says so in its JSON
    assert slowed["cqrs_bench"]["test_slowdown"] == "queries.search_products=0.05"
