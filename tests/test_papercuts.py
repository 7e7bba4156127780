"""What a new user meets first, on a fresh clone: options refused before anything starts, `compare`
on incomplete runs, `serve` ready for plain Locust, and documentation that works as written."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import psycopg
import pytest
from test_db_cli import _cli, _env

from harness.deploy.provision import HUGE_STOCK
from harness.postgres.server import free_port
from harness.postgres.servers import READ_DSN_ENV, WRITE_DSN_ENV, Servers

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = sorted((ROOT / "results" / "sample" / "sample").iterdir())[-1]  # the committed run


def _cli_run(
    home: Path, *args: str, timeout: float = 120, **env: str
) -> subprocess.CompletedProcess:
    return subprocess.run(
        _cli(*args), env=_env(home, **env), capture_output=True, text=True, timeout=timeout
    )


def _refused(tmp_path: Path, *args: str) -> str:
    """`cqrs-bench ARGS` on a fresh clone's state (no DSN, no `db up` pair) fails with one line
    and starts nothing (no server, no results); that line."""
    home, results = tmp_path / "home", tmp_path / "results"
    result = _cli_run(home, *args)
    assert result.returncode == 1, result.stdout + result.stderr
    assert "Traceback" not in result.stderr
    (line,) = result.stderr.splitlines()
    assert line.startswith("error: ")
    assert not (home / "servers").exists(), "servers were started before refusing"
    assert not results.exists() or not any(results.rglob("run.json")), "a run was started"
    return line


# 1. An implementation named twice


def test_run_refuses_an_implementation_named_twice(tmp_path: Path):
    line = _refused(tmp_path, "run", "--impl", "crud,crud", "--results", str(tmp_path / "results"))
    assert "crud more than once" in line


# 1b. A setting the architecture does not have, or for one the command does not start


@pytest.mark.parametrize(
    ("command", "said"),
    [
        (
            ["run", "--impl", "crud,cqrs-es", "--set", "cqrs-es.snapshots=5"],
            "no setting 'snapshots'",
        ),
        (["run", "--impl", "crud", "--set", "cqrs-es.snapshot_interval=5"], "not measured here"),
        (
            ["serve", "--impl", "cqrs-es", "--set", "cqrs-es.snapshot_interval=often"],
            "whole number",
        ),
    ],
    ids=["unknown", "not-run", "not-a-number"],
)
def test_a_setting_that_cannot_apply_is_refused_before_anything_starts(tmp_path, command, said):
    assert said in _refused(
        tmp_path,
        *command,
        *(["--results", str(tmp_path / "results")] if command[0] == "run" else []),
    )


# 2. --database without servers that could hold it


@pytest.mark.parametrize(
    "command",
    [
        ["run", "--impl", "crud", "--database", "cqrsb_mine"],
        ["serve", "--impl", "crud", "--database", "cqrsb_mine"],
        ["provision", "--impl", "crud"],
    ],
    ids=["run", "serve", "provision"],
)
def test_a_database_on_throwaway_servers_is_refused_saying_what_to_do(tmp_path: Path, command):
    line = _refused(
        tmp_path,
        *command,
        "--results" if command[0] == "run" else "--sf",
        str(tmp_path / "results") if command[0] == "run" else "0.01",
    )
    assert "cqrs-bench db up" in line and "--write-dsn" in line, line
    if "--database" in command:
        assert "--database cqrsb_mine" in line


def test_with_a_given_server_the_database_itself_is_looked_for(tmp_path: Path, servers: Servers):
    result = _cli_run(
        tmp_path / "home",
        "run",
        "--impl",
        "crud",
        "--database",
        "cqrsb_nosuch",
        "--results",
        str(tmp_path / "results"),
        "--write-dsn",
        servers.write_dsn,
    )
    assert result.returncode == 1 and "Traceback" not in result.stderr, result.stderr
    assert result.stderr.splitlines() == [result.stderr.strip()]
    assert "cannot use database 'cqrsb_nosuch'" in result.stderr


# 3. A bad --results


@pytest.mark.parametrize("where", ["a file", "under a file", "a read-only file system"])
def test_a_bad_results_path_is_one_line_before_anything_starts(tmp_path: Path, where: str):
    a_file = tmp_path / "a-file"
    a_file.write_text("not a directory\n")
    results = {
        "a file": a_file,
        "under a file": a_file / "results",
        "a read-only file system": Path("/proc/cqrs-bench-results"),
    }[where]
    line = _refused(tmp_path, "run", "--impl", "crud", "--results", str(results))
    assert line.startswith("error: --results") and str(results) in line
    assert a_file.read_text() == "not a directory\n"  # nothing lost


# 4. compare and incomplete runs


def _incomplete_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "sample" / SAMPLE.name
    shutil.copytree(SAMPLE, copy)
    meta = json.loads((copy / "run.json").read_text())
    meta.update(
        status="incomplete", incomplete_reason="interrupted", failed_component=None, failed_log=None
    )
    (copy / "run.json").write_text(json.dumps(meta, indent=2))
    return copy


def test_compare_warns_on_a_line_of_its_own_when_a_run_is_incomplete(tmp_path: Path):
    incomplete = _incomplete_copy(tmp_path)
    result = _cli_run(tmp_path, "compare", str(SAMPLE), str(incomplete), "--resamples", "100")
    assert result.returncode == 0, result.stderr
    warnings = [line for line in result.stdout.splitlines() if line.startswith("warning: ")]
    assert len(warnings) == 1 and "incomplete (interrupted)" in warnings[0], result.stdout
    assert "checkout p99" in result.stdout  # still compared


def test_compare_as_a_gate_refuses_an_incomplete_run_with_exit_2(tmp_path: Path):
    incomplete = _incomplete_copy(tmp_path)
    for a, b in ((SAMPLE, incomplete), (incomplete, SAMPLE)):
        result = _cli_run(
            tmp_path, "compare", str(a), str(b), "--fail-on-regression", "--resamples", "100"
        )
        assert result.returncode == 2, result.stdout + result.stderr
        (line,) = result.stderr.splitlines()
        assert "incomplete (interrupted)" in line and "--fail-on-regression" in line
        assert "Traceback" not in result.stderr and result.stdout == ""
    whole = _cli_run(
        tmp_path, "compare", str(SAMPLE), str(SAMPLE), "--fail-on-regression", "--resamples", "100"
    )
    assert whole.returncode == 0 and "warning" not in whole.stdout, whole.stdout + whole.stderr


# 7. serve prepares its clone as runs do, and says how to point plain Locust at it


def _read_until(proc: subprocess.Popen, needle: str, seen: list[str], timeout: float = 180) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        seen.append(line)
        if needle in line:
            return line.strip()
        assert line or proc.poll() is None, "".join(seen)
    raise AssertionError(f"never printed {needle!r}:\n{''.join(seen)}")


@pytest.mark.parametrize("impl", ["crud", "cqrs-physical"])  # cqrs-physical: two databases
def test_serve_raises_stock_and_prints_the_catalog_dsn_and_the_locust_command(
    tmp_path: Path, servers: Servers, impl: str
):
    port = free_port()
    env = _env(
        tmp_path / "home", **{WRITE_DSN_ENV: servers.write_dsn, READ_DSN_ENV: servers.read_dsn}
    )
    proc = subprocess.Popen(
        _cli("serve", "--impl", impl, "--sf", "0.01", "--port", str(port)),
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    seen: list[str] = []
    try:
        dsn = _read_until(proc, "catalog DSN", seen).split(": ", 1)[1]
        command = _read_until(proc, "plain Locust:", seen).split(": ", 1)[1]
        _read_until(proc, "Uvicorn running on", seen)
        with psycopg.connect(dsn, connect_timeout=10) as conn:  # the printed DSN connects
            products, lowest = conn.execute("SELECT count(*), min(stock) FROM products").fetchone()
        assert products > 0 and lowest == HUGE_STOCK  # as `run` prepares its clones
        args = shlex.split(command)
        assert args[:2] == ["locust", "-f"] and args[2].endswith("workloads/locustfile.py")
        assert args[args.index("--host") + 1] == f"http://127.0.0.1:{port}"
        assert args[args.index("--catalog-dsn") + 1] == dsn
        # The printed command itself, headless for a few seconds: no checkout runs out of stock.
        locust = subprocess.run(
            [
                sys.executable,
                "-m",
                "locust",
                *args[1:],
                "--headless",
                "--run-time",
                "6s",
                "--csv",
                str(tmp_path / "plain"),
                "--loglevel",
                "WARNING",
            ],
            cwd=tmp_path,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert locust.returncode in (0, 1), locust.stderr[-3000:]  # 1: some request failed
        stats = pd.read_csv(tmp_path / "plain_stats.csv")
        assert stats.loc[stats["Name"] == "checkout", "Request Count"].sum() > 0, stats
        failures = pd.read_csv(tmp_path / "plain_failures.csv")
        assert not failures["Error"].astype(str).str.contains("out_of_stock").any(), failures
    finally:
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    database = dsn.rsplit("/", 1)[1]
    with psycopg.connect(servers.write_dsn) as conn:  # the clone went with the service
        assert not conn.execute(
            "SELECT 1 FROM pg_database WHERE datname = %s", (database,)
        ).fetchone()


# 8. plain Locust's output folder


def test_plain_locusts_output_folder_is_ignored_by_git():
    result = subprocess.run(
        ["git", "check-ignore", "-q", "locust-out/seconds-1.jsonl"],
        cwd=ROOT,
        capture_output=True,
        text=True,
    )
    assert result.returncode == 0, "locust-out/ is not in .gitignore"


# 9. results/README.md's example, on the committed (closed-loop) sample run


def test_the_results_readme_example_reads_a_closed_loop_run(capsys):
    meta = json.loads((SAMPLE / "run.json").read_text())
    assert meta["config"]["arrival_rate"] is None  # closed loop: no kind 'intended'
    readme = (ROOT / "results" / "README.md").read_text()
    section = readme.split("## Reading a run", 1)[1].split("## Complete and incomplete runs", 1)[0]
    code = "\n".join(re.findall(r"```python\n(.*?)```", section, flags=re.S))
    placeholder = 'Path("results/interference/20250131T120000Z")'
    assert code.count(placeholder) == 1, "the example's run path changed: update this test"
    names: dict = {}
    exec(
        compile(code.replace(placeholder, f"Path({str(SAMPLE)!r})"), "results/README.md", "exec"),
        names,
    )
    printed = capsys.readouterr().out
    checkout = names["checkout"]
    assert set(checkout["impl"]) == set(meta["config"]["impls"]) and (checkout["count"] > 0).all()
    assert all(impl in printed for impl in checkout["impl"]) and printed.rstrip().endswith("ms")
    # "latency_summary.parquet is exactly this": the merged histogram gives the summary's p99.9.
    summary = names["summary"].query(
        "impl == 'crud' and operation == 'checkout' and kind == 'service'"
    )
    p999 = names["merged"].get_value_at_percentile(99.9) / 1000
    assert p999 == pytest.approx(summary["p999_ms"].iloc[0])
