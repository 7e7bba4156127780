"""`cqrs-bench run`: short real runs of every architecture in process (and over HTTP, those that
no other test runs so), and Ctrl-C."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pandas as pd
import psutil
import psycopg
import pytest

from harness.deploy.provision import drop, provision
from harness.deploy.service import healthy
from harness.postgres.server import free_port
from harness.postgres.servers import READ_DSN_ENV, WRITE_DSN_ENV, Servers
from harness.results.validate import validate_run
from harness.runner.reconcile import READ_MODELS
from harness.runner.run import RunPlan, run
from implementations import registry
from tests.conftest import still_running, until_measuring
from workloads.spec import load_mix

CQRS = set(registry.projected())  # the architectures with a projection
# the architectures whose queries read the shared read models (reconciled after a run)
READ_MODELS_OF = {
    a.name for a in registry.architectures().values() if a.read_model != "write tables"
}
LAGGING = {name for name in registry.names() if registry.lagging(name)}  # and with a refresher
SF = 0.01
ALL = registry.names()
# Over HTTP (a service process each), the baseline and the architectures the main job does not
# run: the others run over HTTP elsewhere (cqrs-physical, and a copy of it, to a complete run in
# test_a_run_measures_servers_and_a_service_it_did_not_start and test_new_architecture.py;
# cqrs-logical in the Ctrl-C test). In process, every architecture runs here.
OVER_HTTP = [n for n in ALL if n == registry.baseline() or not registry.architecture(n).default_run]


def _table(run_dir: Path, name: str) -> pd.DataFrame:
    return pd.read_parquet(run_dir / f"{name}.parquet")


def _check_users(run_dir: Path, plan: RunPlan) -> None:
    """Every implementation has users of each class of the mix in every second of the measure
    phase, as many as the mix says (steady shape; with workers: summed over them)."""
    mix = load_mix(plan.mix)
    users = _table(run_dir, "users")
    assert set(users["impl"]) == set(plan.impls)
    for impl in plan.impls:
        measured = users[(users.impl == impl) & (users.phase == "measure")]
        assert set(measured["user_class"]) == set(mix.classes), impl
        for name, rows in measured.groupby("user_class"):
            assert len(rows) == plan.duration, (impl, name)  # one row per measured second
            assert (rows["users"] == mix.count(name)).all(), (impl, name, rows["users"].tolist())


@pytest.mark.parametrize("transport", ["inproc", "http"])
def test_a_short_run_of_every_architecture_gives_a_valid_plausible_results_directory(
    servers: Servers, tmp_path: Path, transport: str
):
    plan = RunPlan(
        impls=ALL if transport == "inproc" else OVER_HTTP,
        transport=transport,
        duration=3,  # the structure of the results, not their statistics: seconds suffice
        warmup=1,
        sf=SF,
        experiment=f"test-{transport}",
        results_root=tmp_path,
        report=transport == "http",
    )
    (run_dir,) = run(plan, servers, progress=lambda _line: None)

    assert validate_run(run_dir) == []
    if plan.report:  # the report of the run, with its charts
        report = (run_dir / "report" / "report.md").read_text()
        assert "## Decision record" in report and (run_dir / "report" / "latency_cdf.png").is_file()
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "complete"
    ran = set(plan.impls)
    assert set(meta["impls"]) == ran

    summary = _table(run_dir, "latency_summary")
    for impl in plan.impls:
        checkout = summary[
            (summary.impl == impl) & (summary.operation == "checkout") & (summary.kind == "service")
        ]
        assert len(checkout) == 1 and checkout["count"].iloc[0] > 0, impl
        assert (
            0
            < checkout["p50_ms"].iloc[0]
            <= checkout["p99_ms"].iloc[0]
            <= checkout["max_ms"].iloc[0]
        )
        dashboards = summary[
            (summary.impl == impl) & summary.operation.str.startswith("dashboard_")
        ]
        assert dashboards["count"].sum() > 0, impl
        assert (_table(run_dir, "verification").query("impl == @impl")["matched"]).all()
        assert (run_dir / "locust" / f"{impl}_stats.csv").is_file()

    # After the load, every read model was reconciled with the write model, and agreed.
    verification = _table(run_dir, "verification")
    after = verification.query("phase == 'after'")
    assert set(after["impl"]) == READ_MODELS_OF & ran  # the others read the write tables
    for impl in READ_MODELS_OF & ran:
        tables = after.query("impl == @impl")
        assert sorted(tables["check"]) == sorted(m.table for m in READ_MODELS), impl
        assert tables["matched"].all(), tables.to_dict("records")
        assert meta["impls"][impl]["reconciliation"]["mismatches"] == 0

    latency = _table(run_dir, "latency")
    assert (latency.loc[latency["count"] > 0, "p50_ms"] > 0).all()
    assert set(latency["phase"]) >= {"warmup", "measure"}
    _check_users(run_dir, plan)  # the Shoppers (and every class) of the mix, while measured

    # Lag per commit exists for the architectures with a projection or a standby, freshness for
    # those and the ones with a refresher (whose refreshes are recorded), all non-negative; a
    # standby's replay was sampled, and waited for.
    replaying = (
        CQRS | {a.name for a in registry.architectures().values() if a.reads_standby}
    ) & ran
    for table, column, impls in (
        ("event_lag", "lag_ms", replaying),
        ("freshness", "freshness_ms", LAGGING & ran),
        ("lag", "events_behind", replaying),
        ("refreshes", "duration_ms", set(registry.refreshed()) & ran),
    ):
        frame = _table(run_dir, table)
        assert set(frame["impl"]) == impls, table
        assert (frame[column] >= 0).all(), table
    standby = {impl for impl in ran if registry.architecture(impl).reads_standby}
    assert set(_table(run_dir, "replay")["impl"]) == standby
    statements = _table(run_dir, "statements")
    for impl in standby:  # its queries' statistics come from the standby
        assert "standby" in set(statements.query("impl == @impl")["server"]), impl
        assert meta["impls"][impl]["standby_caught_up_s"] >= 0
        assert meta["impls"][impl]["hot_standby_feedback"] is False
    # Active sessions were sampled on the write server for every architecture, and on the read
    # server for the physical one; CPU was measured for the servers and the load generator.
    waits = _table(run_dir, "waits")
    assert set(waits["impl"]) == ran
    for impl in plan.impls:
        if registry.architecture(impl).separate_read_server:
            assert set(waits.query("impl == @impl")["server"]) == {"write", "read"}, impl
    resources = _table(run_dir, "resources")
    baseline = registry.baseline()
    components = set(resources.query("impl == @baseline")["component"])
    assert {"write_server", "locust", "runner"} <= components
    if transport == "http":
        assert "service" in components
        # a service with a core to itself had headroom: no level measured the service
        assert meta["impls"][baseline]["cpu_capacity"]["service"]["cores"] >= 1
        summary_text = (run_dir / "summary.txt").read_text().replace("\n", " ")
        assert "measured the service" not in summary_text
    stats = _table(run_dir, "db_stats")
    commits = stats[(stats.stat == "xact_commit") & (stats.server == "write")]
    assert set(commits["impl"]) == ran and (commits["delta"] > 0).all()
    assert len(_table(run_dir, "statements")) > 0
    # Storage: the run's databases; CQRS keeps read models besides the same write model.
    size = _table(run_dir, "storage").query("relation == ''").groupby("impl")["bytes"].sum()
    assert set(size.index) == ran and (size > 0).all()
    assert all(size[impl] > size[baseline] for impl in CQRS & ran)


def _descendants(pid: int) -> list[psutil.Process]:
    return psutil.Process(pid).children(recursive=True)


def test_ctrl_c_stops_every_process_and_keeps_an_incomplete_result(
    servers: Servers, tmp_path: Path
):
    env = {**os.environ, WRITE_DSN_ENV: servers.write_dsn, READ_DSN_ENV: servers.read_dsn}
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "harness",
            "run",
            "--impl",
            "cqrs-logical",
            "--sf",
            str(SF),
            "--duration",
            "120",
            "--warmup",
            "1",
            "--transport",
            "http",
            "--results",
            str(tmp_path),
            "--experiment",
            "interrupted",
        ],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        seen, children = until_measuring(proc)
        proc.send_signal(signal.SIGINT)
        first = proc.stdout.readline()  # at once, before stopping anything
        out, _ = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, seen + first + out
    assert first.startswith("stopping: Ctrl-C received; stopping every process"), first + out
    assert not (alive := still_running(children)), f"left running: {alive}"

    (run_dir,) = (tmp_path / "interrupted").iterdir()
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "incomplete" and meta["incomplete_reason"] == "interrupted"
    # The summary, printed and in summary.txt, says it covers only part of the run.
    assert (run_dir / "summary.txt").read_text().startswith("PARTIAL: the run was stopped early")
    printed = out.splitlines()
    partial = [i for i, line in enumerate(printed) if line.startswith("PARTIAL: ")]
    ending = [i for i, line in enumerate(printed) if line.startswith("results (incomplete)")]
    assert len(partial) == 1 and len(ending) == 1 and partial[0] < ending[0], out
    assert validate_run(run_dir) == []  # an incomplete run is still a well-formed one
    latency = _table(run_dir, "latency")
    assert latency.query("operation == 'checkout'")["count"].sum() > 0  # what was measured is kept


def _databases(dsn: str) -> set[str]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return {r[0] for r in conn.execute("SELECT datname FROM pg_database")}


def test_a_run_measures_servers_and_a_service_it_did_not_start(servers: Servers, tmp_path: Path):
    """The test starts the servers (the session's pair, handed over as DSNs), provisions a
    database and starts its API and projector; the run measures them and starts only Locust."""
    impl = "cqrs-physical"
    dbs = provision(
        impl,
        servers,
        sf=SF,
        seed=42,
        name=f"given_{uuid.uuid4().hex[:8]}",
        progress=lambda _line: None,
    )
    dsns = ["--write-dsn", servers.write_dsn, "--read-dsn", servers.read_dsn]
    port = free_port()
    deployment = [
        subprocess.Popen(
            [sys.executable, "-m", "harness", *args, "--impl", impl, "--database", dbs.name, *dsns],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            start_new_session=True,
        )
        for args in (["serve", "--port", str(port)], ["project", "run"])
    ]
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not healthy(url):
            assert time.monotonic() < deadline and all(p.poll() is None for p in deployment)
            time.sleep(0.2)
        before = _databases(servers.write_dsn), _databases(servers.read_dsn)
        plan = RunPlan(
            impls=[impl],
            database=dbs.name,
            service_url=url,
            duration=3,
            warmup=1,
            sf=SF,
            experiment="given",
            results_root=tmp_path,
            report=False,
        )
        (run_dir,) = run(plan, servers, progress=lambda _line: None)

        assert validate_run(run_dir) == []
        details = json.loads((run_dir / "run.json").read_text())["impls"][impl]
        assert details["database"] == dbs.name and details["database_origin"] == "given"
        assert details["service"] == url and details["service_origin"] == "given"
        assert details["projector"] == "external" and details["started"] == ["locust"]
        assert details["reconciliation"]["mismatches"] == 0  # its read models were read, too
        assert (_databases(servers.write_dsn), _databases(servers.read_dsn)) == before
        assert all(p.poll() is None for p in deployment), "the run stopped what it did not start"
        latency = _table(run_dir, "latency")
        assert latency.query("operation == 'checkout' and phase == 'measure'")["count"].sum() > 0
        assert len(_table(run_dir, "lag")) > 0  # events behind are sampled from the databases
    finally:
        for proc in deployment:
            os.killpg(proc.pid, signal.SIGTERM)
            proc.wait(timeout=30)
        drop(servers, dbs)


def test_a_run_with_two_locust_workers_merges_their_histograms_exactly(
    servers: Servers, tmp_path: Path
):
    from hdrh.histogram import HdrHistogram

    plan = RunPlan(
        impls=["crud"],
        transport="inproc",
        duration=3,
        warmup=1,
        sf=SF,
        locust_workers=2,
        experiment="workers",
        results_root=tmp_path,
        report=False,
    )
    (run_dir,) = run(plan, servers, progress=lambda _line: None)
    assert validate_run(run_dir) == []
    assert json.loads((run_dir / "run.json").read_text())["impls"]["crud"]["started"] == [
        "locust",
        "locust-worker-1",
        "locust-worker-2",
    ]

    # Every worker's own per-second histograms, summed here, equal what the results hold.
    sums: dict[tuple, list] = {}
    workers = set()
    for path in (run_dir / "raw" / "crud").glob("seconds-*.jsonl"):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            workers.add(record.get("worker"))
            for op in record["ops"]:
                key = (record["second"], op["operation"], op["kind"])
                total = sums.setdefault(key, [0, None])
                total[0] += op["count"]
                if op["count"]:
                    hist = HdrHistogram.decode(op["hdr"])
                    total[1] = hist if total[1] is None else (total[1].add(hist) or total[1])
    assert len(workers - {None}) == 2
    _check_users(run_dir, plan)  # the users of both workers add up to one process's
    latency = _table(run_dir, "latency")
    assert len(latency) == len(sums)
    for row in latency.itertuples():
        count, hist = sums[(int(row.second.timestamp()), row.operation, row.kind)]
        assert row.count == count
        if count:
            merged = HdrHistogram.decode(row.hdr)
            assert merged.get_total_count() == hist.get_total_count() == count
            for p in (50, 90, 99, 99.9, 100):
                assert merged.get_value_at_percentile(p) == hist.get_value_at_percentile(p)


def test_the_interference_shape_steps_the_analysts_within_the_measured_window(
    servers: Servers, tmp_path: Path
):
    """The interference shape's stages all fall in the measured window (the users table says
    so), in order, after a warm-up whose first half runs every class. The shape is Locust's, the
    same whichever implementation it drives: one is run here (and rounds are the next test's)."""
    plan = RunPlan(
        impls=["crud"],
        transport="inproc",
        mix="dashboard-heavy",
        shape="interference",
        duration=8,  # 2 s a stage: each level fills at least one whole measured second
        warmup=4,
        sf=SF,
        experiment="stages",
        results_root=tmp_path,
        report=False,
    )
    (run_dir,) = run(plan, servers, progress=lambda _line: None)
    assert validate_run(run_dir) == []
    users = _table(run_dir, "users")
    analysts = users[(users.user_class == "Analyst") & (users.phase == "measure")]
    for impl in plan.impls:
        levels = analysts[analysts.impl == impl].sort_values("second")["users"].tolist()
        assert sorted(set(levels)) == [0, 4, 8, 16], (impl, levels)  # every stage measured
        assert levels == sorted(levels), (impl, levels)  # in order
    warm = users[(users.user_class == "Analyst") & (users.phase == "warmup")]
    assert warm["users"].max() >= 1  # the warm-up's first half runs every class


def test_rounds_reverse_the_order_and_the_last_report_pools_them(servers: Servers, tmp_path: Path):
    """--repeat 2: two valid run directories, the second in the reverse order; the last round's
    report and summary cover both rounds and open with the answer. The rounds' order and pooling
    do not depend on the load: a short steady one (the interference shape's stages are checked
    by the test above)."""
    plan = RunPlan(
        impls=["crud", "cqrs-logical"],
        transport="inproc",
        duration=2,
        warmup=1,
        sf=SF,
        repeat=2,
        experiment="rounds",
        results_root=tmp_path,
    )
    lines: list[str] = []
    dirs = run(plan, servers, progress=lines.append)
    assert len(dirs) == 2 and all(validate_run(d) == [] for d in dirs)
    metas = [json.loads((d / "run.json").read_text()) for d in dirs]
    assert [m["config"]["round"] for m in metas] == [1, 2]
    assert [m["config"]["order"] for m in metas] == [
        ["crud", "cqrs-logical"],
        ["cqrs-logical", "crud"],
    ]
    report = (dirs[-1] / "report" / "report.md").read_text()
    assert all(f"`rounds/{d.name}`" in report for d in dirs)
    assert report.index("## Answer") < report.index("## Latency") < report.index("## Claims")
    pooled = (dirs[-1] / "report" / "summary.txt").read_text()
    assert pooled.startswith("ANSWER") and pooled.count("crud") >= 2
    assert any(line.startswith("=== round 2/2: cqrs-logical, crud") for line in lines)


@pytest.mark.parametrize("transport", ["inproc", "http"])
def test_a_serializable_mix_records_retries_and_typed_errors(
    servers: Servers, tmp_path: Path, transport: str
):
    """crud under the serializable mix: checkouts on the few hot products of sf 0.01 conflict,
    are retried (counted in the results) and, past --retries 1, fail as serialization_failure;
    the mix's isolation and the bound are in run.json."""
    plan = RunPlan(
        impls=[registry.baseline()],
        mix="serializable",
        transport=transport,
        duration=4,
        warmup=1,
        sf=SF,
        experiment=f"test-serializable-{transport}",
        results_root=tmp_path,
        collectors=False,
        report=False,
        retries=1,
    )
    (run_dir,) = run(plan, servers, progress=lambda _line: None)
    assert validate_run(run_dir) == []
    config = json.loads((run_dir / "run.json").read_text())["config"]
    assert config["retries"] == 1
    assert config["mix_spec"]["classes"]["Shopper"]["isolation"] == "serializable"
    latency = _table(run_dir, "latency").query("kind == 'service'")
    retried = latency.groupby("operation")["retries"].sum()
    assert retried.get("checkout", 0) > 0, retried.to_dict()
    summary = _table(run_dir, "latency_summary").query("kind == 'service'")
    measured = latency.query("phase == 'measure'").groupby("operation")["retries"].sum()
    assert summary.set_index("operation")["retries"].to_dict() == measured.to_dict()
    errors = _table(run_dir, "errors")
    kinds = set(errors["error"]) if len(errors) else set()
    assert kinds <= {"serialization_failure", "deadlock", "out_of_stock"}, kinds
