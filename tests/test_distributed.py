"""Locust as a master and two worker processes: results merged exactly, nothing lost at the stop,
distinct requests per worker (workloads/distributed.py). Real Locust subprocesses, real PostgreSQL.
"""

from __future__ import annotations

import csv
import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

import psycopg
import pytest
from hdrh.histogram import HdrHistogram

from implementations import registry
from implementations.interface import Config
from workloads.config import WorkloadConfig
from workloads.recorder import merge_seconds, new_histogram, read_seconds

ROOT = Path(__file__).resolve().parents[1]
RUN_TIME_S = 6
LOCUST = [sys.executable, "-m", "locust", "-f", str(ROOT / "workloads" / "locustfile.py")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


def _start(command: list[str], log: Path, cwd: Path) -> subprocess.Popen:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.Popen(
        command,
        cwd=cwd,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )


def _our_orders(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT idempotency_key FROM orders WHERE idempotency_key ~ "
            "'^42-(Shopper|Prober)-[0-9]+-[0-9]+$'"
        ).fetchall()
    return [key for (key,) in rows]


def _distributed_run(dsn: str, tmp_path: Path, mix_name: str, **config) -> dict:
    """Master + two workers for RUN_TIME_S; the master's results, its CSV, our orders' keys."""
    registry.create("crud", Config(dsn, dsn)).install()
    with psycopg.connect(dsn) as conn:
        conn.execute("UPDATE products SET stock = %s", (10**12,))
    assert _our_orders(dsn) == []
    master_dir, worker_dir, out = tmp_path / "master", tmp_path / "worker", tmp_path / "out"
    master_dir.mkdir()
    worker_dir.mkdir()
    mix = master_dir / "my-mix.toml"  # a mix only the master has: it must travel to the workers
    mix.write_text((ROOT / "workloads" / "mixes" / f"{mix_name}.toml").read_text())
    config_path = master_dir / "workload.json"
    config_path.write_text(
        WorkloadConfig(
            transport="inproc",
            impl="crud",
            write_dsn=dsn,
            mix=str(mix),
            seed=42,
            duration_s=RUN_TIME_S,
            out_dir=str(out),
            **config,
        ).to_json()
    )
    port = _free_port()
    procs: list[subprocess.Popen] = []
    try:
        procs.append(
            _start(
                [
                    *LOCUST,
                    "--master",
                    "--headless",
                    "--expect-workers",
                    "2",
                    "--master-bind-host",
                    "127.0.0.1",
                    "--master-bind-port",
                    str(port),
                    "--run-time",
                    f"{RUN_TIME_S}s",
                    "--csv",
                    str(master_dir / "locust"),
                    "--exit-code-on-error",
                    "0",
                    "--cqrs-config",
                    str(config_path),
                ],
                master_dir / "master.log",
                ROOT,
            )
        )
        deadline = time.monotonic() + 30
        # Listening comes before Locust's init event, in which the master reads the config and
        # the mix: wait for the line it logs once it has them, then take them away.
        while (
            not _listening(port)
            or "cqrs-bench workload:" not in (master_dir / "master.log").read_text()
        ):
            assert procs[0].poll() is None, (master_dir / "master.log").read_text()[-3000:]
            assert time.monotonic() < deadline, "the master never listened"
            time.sleep(0.1)
        config_path.unlink()  # the workers get everything from the master
        mix.unlink()
        for n in range(2):
            procs.append(
                _start(
                    [*LOCUST, "--worker", "--master-host", "127.0.0.1", "--master-port", str(port)],
                    worker_dir / f"worker-{n}.log",
                    worker_dir,
                )
            )
        try:
            for proc in procs:
                proc.wait(timeout=RUN_TIME_S + 45)
        except subprocess.TimeoutExpired:
            pytest.fail(
                "locust did not finish:\n" + (master_dir / "master.log").read_text()[-3000:]
            )
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
    logs = "\n".join(p.read_text()[-2000:] for p in sorted(tmp_path.glob("*/*.log")))
    assert [p.returncode for p in procs] == [0, 0, 0], logs
    assert not re.search(r"Uncaught|no final report|Timeout waiting", logs), logs
    files = sorted(out.glob("seconds-*.jsonl"))
    assert [f.name for f in files] == [f"seconds-{procs[0].pid}.jsonl"], files  # workers: none
    with (master_dir / "locust_stats.csv").open() as f:
        aggregated = next(row for row in csv.DictReader(f) if row["Name"] == "Aggregated")
    queries = out / f"queries-{procs[0].pid}.jsonl"
    return {
        "files": files,
        "logs": logs,
        "aggregated": aggregated,
        "keys": _our_orders(dsn),
        "queries": [json.loads(x) for x in queries.read_text().splitlines()]
        if queries.exists()
        else [],
    }


def _check_merged(run: dict) -> dict[tuple, tuple]:
    """(a) lines from both workers, (b) merged = sum of the workers', (c) nothing lost, (d) one
    new order per successful checkout (no idempotency key shared by two workers)."""
    files, logs = run["files"], run["logs"]
    # (a) one file, the master's, with lines from both workers
    lines = list(read_seconds(files[0]))
    assert {line["worker"] for line in lines} == {0, 1}, logs
    assert all(set(line) == {"second", "pid", "ops", "worker", "users"} for line in lines)

    # (b) merged histograms equal the sum of each worker's
    per_worker: dict[int, dict[tuple, HdrHistogram]] = defaultdict(dict)
    for line in lines:
        for op in line["ops"]:
            key = (line["second"], op["operation"], op["kind"])
            per_worker[line["worker"]].setdefault(key, new_histogram()).add(
                HdrHistogram.decode(op["hdr"])
            )
    merged = {tuple(row[:3]): row for row in merge_seconds(files)}
    assert set(merged) == set(per_worker[0]) | set(per_worker[1])
    for key, (*_, count, _errors, histogram) in merged.items():
        total = new_histogram()
        for worker in (0, 1):
            if key in per_worker[worker]:
                total.add(per_worker[worker][key])
        assert count == total.get_total_count()
        assert histogram.encode() == total.encode()
        for pct in (50, 90, 99, 99.9, 100):
            assert histogram.get_value_at_percentile(pct) == total.get_value_at_percentile(pct)

    # (c) every request Locust counted is in our lines, the last second too
    ours = sum(
        count + sum(errors.values())
        for (_s, _op, kind, count, errors, _h) in merged.values()
        if kind == "service"
    )
    assert ours == int(run["aggregated"]["Request Count"]) > 0, logs

    # (d) idempotency keys differ across workers: one new order per successful checkout
    placed = sum(
        count
        for (_s, op, kind, count, _e, _h) in merged.values()
        if kind == "service" and op in ("checkout", "probe_checkout")
    )
    assert len(run["keys"]) == placed > 0
    return merged


def _check_users(run: dict, expected: dict[str, int]) -> None:
    """The users summed over both workers: never more than `expected`, and `expected` in most
    seconds (the first and last may catch a worker before or after its users)."""
    users = merge_seconds(run["files"]).users
    assert users and all(set(counts) == set(expected) for counts in users.values()), users
    assert all(counts[c] <= expected[c] for counts in users.values() for c in expected), users
    full = [second for second, counts in users.items() if counts == expected]
    assert len(full) >= len(users) / 2, users


def _users(keys: list[str]) -> set[str]:
    return {key.rsplit("-", 1)[0] for key in keys}  # 42-<class>-<index>


def test_master_and_two_workers_closed_loop(dataset_clone, tmp_path):
    run = _distributed_run(dataset_clone, tmp_path, "mixed")
    merged = _check_merged(run)
    assert {op for (_s, op, kind) in merged if kind == "service"} >= {"checkout", "view_order"}
    queries = run["queries"]
    assert queries and {q["worker"] for q in queries} <= {0, 1} and all(q["ok"] for q in queries)
    # the users' indices over both workers are one process's: 8 shoppers and a prober
    assert _users(run["keys"]) == {f"42-Shopper-{i}" for i in range(8)} | {"42-Prober-0"}
    # the users acting, summed over the workers, are one process's: the mix's counts
    _check_users(run, {"Shopper": 8, "Analyst": 2, "Merchandiser": 1, "Prober": 1})


def test_master_and_two_workers_open_loop(dataset_clone, tmp_path):
    run = _distributed_run(dataset_clone, tmp_path, "checkout-only", arrival_rate=42.0)
    merged = _check_merged(run)
    arrivals = sum(
        row[3] + sum(row[4].values()) for key, row in merged.items() if key[2] == "intended"
    )
    assert 42 * (RUN_TIME_S - 2) < arrivals < 42 * (RUN_TIME_S + 2), arrivals  # rate / 2 each
    # one scheduler per class on each worker (indices 0 and 1), each with its own keys
    assert _users(run["keys"]) == {f"42-{c}-{i}" for c in ("Shopper", "Prober") for i in (0, 1)}
    _check_users(run, {"Shopper": 2, "Prober": 2})  # open loop: the schedulers, one per worker
