"""The results layer: run directories, the schema, validation, run metadata."""

from __future__ import annotations

import json
import re
import threading
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hdrh.histogram import HdrHistogram
from typer.testing import CliRunner

from harness.cli.results import app as results_app
from harness.results import metadata, schema
from harness.results.run_dir import (
    SchemaMismatch,
    create_run_dir,
    empty_frame,
    finish_run_json,
    read_run_json,
    start_run_json,
    update_run_json,
    write_run_json,
    write_table,
)
from harness.results.validate import check_run, validate_run

NOW = datetime(2025, 1, 31, 12, 0, 0, tzinfo=UTC)
IMPLS = ["crud", "cqrs-logical"]


def _hdr(*values_us: int) -> str:
    h = HdrHistogram(1, 60_000_000, 3)
    for v in values_us:
        h.record_value(v)
    return h.encode().decode("ascii")


def latency_frame(impl: str) -> pd.DataFrame:
    """Two seconds of checkout latency, written by hand as a runner would."""
    seconds = pd.to_datetime(["2025-01-31T12:00:10Z", "2025-01-31T12:00:11Z"])
    return pd.DataFrame(
        {
            "impl": [impl, impl],
            "second": seconds,
            "elapsed_s": [10.0, 11.0],
            "phase": ["warmup", "measure"],
            "operation": ["checkout", "checkout"],
            "kind": ["service", "service"],
            "count": [2, 0],
            "errors": [0, 1],
            "retries": [0, 2],
            "p50_ms": [1.2, np.nan],
            "p90_ms": [3.4, np.nan],
            "p95_ms": [3.4, np.nan],
            "p99_ms": [3.4, np.nan],
            "p999_ms": [3.4, np.nan],
            "max_ms": [3.4, np.nan],
            "mean_ms": [2.3, np.nan],
            "hdr": [_hdr(1200, 3400), _hdr()],
        }
    )


def generic_frame(spec: schema.Table, impls: list[str]) -> pd.DataFrame:
    """One schema-correct row per implementation that may have rows."""
    rows = []
    for impl in impls:
        if not schema.may_have_rows(spec, impl):
            continue
        row = {}
        for col in spec.columns:
            row[col.name] = {
                "timestamp": pd.Timestamp("2025-01-31T12:00:30Z"),
                "int": 1,
                "float": 1.5,
                "str": col.values[0] if col.values else "x",
                "bool": True,
            }[col.kind]
        row["impl"] = impl
        if (
            "phase" in row and spec.column("phase") is schema.PHASE
        ):  # of the load (not verification's)
            row["phase"] = "measure"
        rows.append(row)
    return pd.DataFrame(rows, columns=spec.column_names)


def make_run(root: Path, *, impls: list[str] = IMPLS, status: str = "complete") -> Path:
    run = create_run_dir(root, "unit", now=NOW)
    start_run_json(
        run,
        experiment="unit",
        config={"rate": 10, "duration_s": 30},
        dataset={"sf": 0.01, "seed": 42},
        impls=impls,
        metadata={"versions": {}, "postgres": {}, "git": None, "machine": {}},
        started_at=NOW,
    )
    for spec in schema.TABLES:
        if spec.name == "latency":
            df = pd.concat([latency_frame(i) for i in impls], ignore_index=True)
        else:
            df = generic_frame(spec, impls)
        write_table(run, spec.name, df)
    (run / "locust").mkdir()
    for impl in impls:
        for name in schema.LOCUST_FILES:
            (run / "locust" / name.format(impl=impl)).write_text("Type,Name\n")
    (run / "summary.txt").write_text("summary\n")
    if status == "complete":
        finish_run_json(run, "complete", finished_at=NOW + timedelta(minutes=1))
    return run


def rewrite(run: Path, table: str, change) -> None:
    """Replace a table's file with `change(arrow_table)`, bypassing write_table."""
    path = run / f"{table}.parquet"
    data = change(pq.read_table(path))
    path.unlink()
    pq.write_table(data, path)


@pytest.fixture
def run(tmp_path: Path) -> Path:
    return make_run(tmp_path)


# --- run directories -------------------------------------------------------------------------


def test_run_dirs_in_the_same_second_are_distinct(tmp_path: Path) -> None:
    first = create_run_dir(tmp_path, "exp", now=NOW)
    second = create_run_dir(tmp_path, "exp", now=NOW)
    third = create_run_dir(tmp_path, "exp", now=NOW)
    assert first == tmp_path / "exp" / "20250131T120000Z"
    assert second.name == "20250131T120000Z-2" and third.name == "20250131T120000Z-3"
    assert all(p.is_dir() and not any(p.iterdir()) for p in (first, second, third))
    assert re.fullmatch(r"\d{8}T\d{6}Z", create_run_dir(tmp_path, "exp").name)


def test_concurrent_run_dirs_never_share(tmp_path: Path) -> None:
    made: list[Path] = []
    barrier = threading.Barrier(8)

    def create() -> None:
        barrier.wait()
        made.append(create_run_dir(tmp_path, "exp", now=NOW))

    threads = [threading.Thread(target=create) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(made)) == 8


@pytest.mark.parametrize(
    "name", ["", "../up", "a/b", ".hidden", "-x", "with space", "é", "x" * 101]
)
def test_bad_experiment_names_are_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ValueError, match="invalid experiment name"):
        create_run_dir(tmp_path, name)
    assert not any(tmp_path.iterdir())


def test_good_experiment_name(tmp_path: Path) -> None:
    assert create_run_dir(tmp_path, "interference_v2.sf-1").parent.name == "interference_v2.sf-1"


def test_tables_are_never_overwritten(tmp_path: Path) -> None:
    run = create_run_dir(tmp_path, "exp")
    path = write_table(run, "latency", latency_frame("crud"))
    before = path.read_bytes()
    with pytest.raises(FileExistsError, match="never overwritten"):
        write_table(run, "latency.parquet", latency_frame("cqrs-logical"))
    assert path.read_bytes() == before
    assert [p.name for p in run.iterdir()] == ["latency.parquet"]  # no temporary left


def test_written_table_reads_back(tmp_path: Path) -> None:
    run = create_run_dir(tmp_path, "exp")
    write_table(run, "latency", latency_frame("crud"))
    back = pd.read_parquet(run / "latency.parquet")
    assert list(back.columns) == schema.table("latency").column_names
    assert str(back["second"].dtype) == "datetime64[us, UTC]"
    assert back["p50_ms"].isna().tolist() == [False, True]
    merged = HdrHistogram.decode(back["hdr"][0])
    merged.add(HdrHistogram.decode(back["hdr"][1]))
    assert merged.get_total_count() == 2
    file_schema = pq.read_schema(run / "latency.parquet")
    assert (
        file_schema.metadata[b"cqrs_bench.results_schema_version"]
        == str(schema.RESULTS_SCHEMA_VERSION).encode()
    )


def test_empty_frames_are_valid_for_every_table(tmp_path: Path) -> None:
    run = create_run_dir(tmp_path, "exp")
    for spec in schema.TABLES:
        write_table(run, spec.name, empty_frame(spec.name))
        assert pq.read_table(run / spec.file_name).schema.names == spec.column_names


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda df: df.drop(columns="p99_ms"), r"latency.parquet: missing columns \['p99_ms'\]"),
        (lambda df: df.assign(extra=1), r"latency.parquet: undocumented columns \['extra'\]"),
        (lambda df: df.assign(count=[1.0, np.nan]), r"column 'count'.*Int64"),
        (lambda df: df.assign(second=df["second"].dt.tz_localize(None)), "'second'.*naive"),
        (lambda df: df.assign(operation=[1, 2]), "'operation'.*expected strings"),
        (lambda df: df.assign(phase=["measure", "steady"]), r"'phase' has values \['steady'\]"),
        (lambda df: df.assign(p50_ms=[-1.0, np.nan]), "'p50_ms' has negative values"),
        (lambda df: df.assign(hdr=["x", None]), "'hdr' has 1 null"),
    ],
)
def test_write_table_checks_the_frame(tmp_path: Path, change, message: str) -> None:
    run = create_run_dir(tmp_path, "exp")
    with pytest.raises(SchemaMismatch, match=message):
        write_table(run, "latency", change(latency_frame("crud")))
    assert not any(run.iterdir())


def test_unknown_table_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown results table 'latencies'"):
        write_table(create_run_dir(tmp_path, "exp"), "latencies", pd.DataFrame())


# --- run.json --------------------------------------------------------------------------------


def test_run_json_start_update_finish(tmp_path: Path) -> None:
    run = create_run_dir(tmp_path, "exp", now=NOW)
    start_run_json(
        run,
        experiment="exp",
        config={"seed": np.int64(42), "path": Path("/x"), "rate": float("nan"), "t": (1, 2)},
        dataset={},
        impls=["crud"],
        metadata={},
    )
    record = read_run_json(run)
    assert record["status"] == "running" and record["finished_at"] is None
    assert (
        record["run_id"] == run.name and record["schema_version"] == schema.RESULTS_SCHEMA_VERSION
    )
    assert record["config"] == {"seed": 42, "path": "/x", "rate": None, "t": [1, 2]}
    update_run_json(run, {"note": "x"}, other=1)
    (run / "logs").mkdir()
    (run / "logs" / "crud-service.log").write_text("boom\n")
    finish_run_json(
        run,
        "incomplete",
        incomplete_reason="service exited with status 1",
        failed_component="service",
        failed_log=run.resolve() / "logs" / "crud-service.log",
    )
    record = read_run_json(run)
    assert record["status"] == "incomplete" and (record["note"], record["other"]) == ("x", 1)
    assert record["failed_log"] == "logs/crud-service.log"
    assert datetime.fromisoformat(record["finished_at"]).tzinfo is not None
    assert sorted(p.name for p in run.iterdir()) == ["logs", "run.json"]  # no temporary left


def test_run_json_refuses_bad_status_and_missing_reason(tmp_path: Path) -> None:
    run = create_run_dir(tmp_path, "exp")
    with pytest.raises(ValueError, match="status must be one of"):
        write_run_json(run, {"status": "done"})
    write_run_json(run, {"status": "running"})
    with pytest.raises(ValueError, match="needs incomplete_reason"):
        finish_run_json(run, "incomplete")


# --- validation ------------------------------------------------------------------------------


def test_a_complete_run_is_valid(run: Path) -> None:
    report = check_run(run)
    assert report.problems == [] and report.warnings == []
    assert report.status == "complete"
    assert validate_run(run) == []


def test_missing_column_is_caught(run: Path) -> None:
    rewrite(run, "waits", lambda t: t.drop_columns(["wait_event"]))
    assert validate_run(run) == ["waits.parquet: missing columns ['wait_event']"]


def test_extra_column_is_caught(run: Path) -> None:
    rewrite(run, "resources", lambda t: t.append_column("gpu", pa.array([1.0] * t.num_rows)))
    assert validate_run(run) == ["resources.parquet: undocumented columns ['gpu']"]


def test_wrong_dtype_is_caught(run: Path) -> None:
    def as_text(t: pa.Table) -> pa.Table:
        i = t.schema.get_field_index("rows")
        return t.set_column(i, "rows", t.column("rows").cast(pa.string()))

    rewrite(run, "statements", as_text)
    problems = validate_run(run)
    assert len(problems) == 1
    assert "statements.parquet: column 'rows' has type string, expected int" in problems[0]


def test_naive_timestamp_is_caught(run: Path) -> None:
    def naive(t: pa.Table) -> pa.Table:
        i = t.schema.get_field_index("ts")
        return t.set_column(i, "ts", t.column("ts").cast(pa.timestamp("us")))

    rewrite(run, "lag", naive)
    assert (
        "lag.parquet: column 'ts' has type timestamp[us], expected timestamp"
        in (validate_run(run)[0])
    )


def test_missing_table_is_caught(run: Path) -> None:
    (run / "event_lag.parquet").unlink()
    assert validate_run(run) == ["event_lag.parquet is missing"]


def test_a_run_without_collectors_needs_no_rows_in_their_tables(run: Path) -> None:
    for table in schema.COLLECTOR_TABLES:
        rewrite(run, table, lambda data: data.slice(0, 0))
    assert any("waits.parquet: no rows for" in p for p in validate_run(run))
    record = read_run_json(run)
    record["config"]["collectors"] = False  # cqrs-bench run --no-collectors
    (run / "run.json").write_text(json.dumps(record))
    assert validate_run(run) == []
    rewrite(run, "latency", lambda data: data.slice(0, 0))  # the load's own tables still count
    assert any("latency.parquet: no rows for" in p for p in validate_run(run))


def test_missing_run_json_keys_are_caught(run: Path) -> None:
    record = read_run_json(run)
    del record["git"], record["machine"]
    (run / "run.json").write_text(json.dumps(record))
    assert validate_run(run) == ["run.json: missing keys ['git', 'machine']"]


def test_missing_or_broken_run_json_is_caught(run: Path) -> None:
    (run / "run.json").write_text("{not json")
    assert any("run.json cannot be read" in p for p in validate_run(run))
    (run / "run.json").unlink()
    assert "run.json is missing" in validate_run(run)


def test_unknown_schema_version_is_caught(run: Path) -> None:
    update_run_json(run, schema_version=99)
    assert validate_run(run) == [
        "run.json: unknown schema_version 99 (this code knows 1, 2, 3, 4, 5)"
    ]


def as_version_1(run: Path) -> None:
    """`run` as results schema version 1 wrote it: no users table, none of the columns version 2
    added (blocker_component, verification's phase)."""
    update_run_json(run, schema_version=1)
    (run / "users.parquet").unlink()
    for path in run.glob("*.parquet"):
        data = pq.read_table(path)
        later = [c.name for c in schema.table(path.stem).columns if c.since > 1]
        data = data.drop_columns([name for name in later if name in data.column_names])
        meta = {**data.schema.metadata, b"cqrs_bench.results_schema_version": b"1"}
        path.unlink()
        pq.write_table(data.replace_schema_metadata(meta), path)


def test_a_version_1_run_is_valid_and_reads_like_a_new_one(run: Path) -> None:
    from harness.analysis.load import load_runs, read

    as_version_1(run)
    assert validate_run(run) == []
    runs = load_runs([run])
    users = read(runs, "users")
    assert users.empty and list(users.columns) == ["run", *schema.table("users").column_names]
    waits = read(runs, "waits")
    assert list(waits.columns) == ["run", *schema.table("waits").column_names]
    assert len(waits) == len(IMPLS) and (waits["blocker_component"] == "").all()
    assert (read(runs, "verification")["phase"] == "").all()
    # what version 2 added is not version 1's
    rewrite(run, "waits", lambda t: t.append_column("blocker_component", pa.array(["x"] * len(t))))
    assert validate_run(run) == ["waits.parquet: undocumented columns ['blocker_component']"]


def test_a_version_2_run_needs_users_and_blocker_component(run: Path) -> None:
    (run / "users.parquet").unlink()
    rewrite(run, "waits", lambda t: t.drop_columns(["blocker_component"]))
    rewrite(run, "verification", lambda t: t.drop_columns(["phase"]))
    assert validate_run(run) == [
        "users.parquet is missing",
        "waits.parquet: missing columns ['blocker_component']",
        "verification.parquet: missing columns ['phase']",
    ]


def test_the_users_of_recorded_seconds_make_a_valid_table(run: Path, tmp_path: Path) -> None:
    from harness.runner.latency import Window, tables
    from workloads.recorder import Recorder, merge_seconds

    class Clock:
        now = 100.5

        def __call__(self) -> float:
            return self.now

    for n, part in enumerate(("a", "b")):  # two processes
        clock = Clock()
        recorder = Recorder(
            tmp_path / part, clock=clock, users=lambda n=n: {"Shopper": 4 + n, "Analyst": n}
        )
        recorder.record("checkout", "service", 1500)
        clock.now = 101.5
        recorder.record("checkout", "service", 2500)
        recorder.flush(everything=True)
    frames = tables(merge_seconds(sorted(tmp_path.glob("*/seconds-*.jsonl"))), Window(100, 1, 10))
    users = frames["users"]
    assert users.to_dict("records") == [
        {
            "second": pd.Timestamp(s, unit="s", tz="UTC"),
            "elapsed_s": s - 100.0,
            "phase": phase,
            "user_class": name,
            "users": n,
        }
        for s, phase in ((100, "warmup"), (101, "measure"))
        for name, n in (("Analyst", 1), ("Shopper", 9))
    ]
    frame = pd.concat([users.assign(impl=impl) for impl in IMPLS], ignore_index=True)
    (run / "users.parquet").unlink()
    write_table(run, "users", frame[schema.table("users").column_names])
    assert validate_run(run) == []
    rewrite(
        run,
        "users",
        lambda t: t.set_column(t.schema.get_field_index("users"), "users", pa.array([-1] * len(t))),
    )
    assert validate_run(run) == ["users.parquet: column 'users' has negative values (min -1)"]


def test_negative_latency_is_caught(run: Path) -> None:
    def negative(t: pa.Table) -> pa.Table:
        i = t.schema.get_field_index("p99_ms")
        return t.set_column(i, "p99_ms", pa.array([-0.5] * t.num_rows))

    rewrite(run, "latency_summary", negative)
    assert validate_run(run) == [
        "latency_summary.parquet: column 'p99_ms' has negative values (min -0.5)"
    ]


def test_rows_missing_for_an_impl_are_caught(run: Path) -> None:
    rewrite(run, "resources", lambda t: t.filter(pa.compute.equal(t.column("impl"), "crud")))
    assert validate_run(run) == ["resources.parquet: no rows for ['cqrs-logical']"]


def test_measure_phase_is_required(run: Path) -> None:
    rewrite(run, "latency", lambda t: t.filter(pa.compute.equal(t.column("phase"), "warmup")))
    assert validate_run(run) == [
        "latency.parquet: no measure-phase rows for ['crud', 'cqrs-logical']"
    ]


def test_lagging_only_tables(tmp_path: Path) -> None:
    run = make_run(tmp_path, impls=["crud"])
    assert validate_run(run) == []  # lag, event_lag and freshness are empty for crud
    (run / "lag.parquet").unlink()
    write_table(
        run, "lag", generic_frame(schema.table("lag"), ["cqrs-logical"]).assign(impl="crud")
    )
    assert validate_run(run) == [
        "lag.parquet: rows for ['crud'], but only architectures with a projection or a standby "
        "have them"
    ]


def test_rows_of_impls_not_in_run_json_are_caught(run: Path) -> None:
    update_run_json(run, impls=["crud"])
    problems = validate_run(run)
    assert "verification.parquet: rows for impls ['cqrs-logical'] that run.json does not list" in (
        problems
    )


def test_missing_locust_csv_is_caught(run: Path) -> None:
    (run / "locust" / "crud_failures.csv").unlink()
    assert validate_run(run) == ["missing files ['locust/crud_failures.csv']"]


def test_undocumented_file_is_a_warning(run: Path) -> None:
    (run / "notes.md").write_text("hi\n")
    report = check_run(run)
    assert report.problems == [] and report.warnings == ["undocumented file notes.md"]


def test_incomplete_run_is_accepted_and_reported(tmp_path: Path) -> None:
    run = make_run(tmp_path, status="running")
    (run / "event_lag.parquet").unlink()
    (run / "summary.txt").unlink()
    rewrite(run, "waits", lambda t: t.filter(pa.compute.equal(t.column("impl"), "crud")))
    finish_run_json(run, "incomplete", incomplete_reason="interrupted (SIGINT)")
    report = check_run(run)
    assert report.problems == []
    assert report.status == "incomplete" and report.incomplete_reason == "interrupted (SIGINT)"
    assert "event_lag.parquet is missing (the run is not complete)" in report.warnings
    assert any("waits.parquet: no rows for ['cqrs-logical']" in w for w in report.warnings)
    # malformed tables are still problems in an incomplete run
    rewrite(run, "waits", lambda t: t.drop_columns(["pid"]))
    assert validate_run(run) == ["waits.parquet: missing columns ['pid']"]


def test_incomplete_run_must_say_why(run: Path) -> None:
    update_run_json(run, status="incomplete", failed_log="logs/nope.log")
    problems = validate_run(run)
    assert (
        "run.json: an incomplete run needs keys ['incomplete_reason', 'failed_component']"
        in problems
    )
    assert "run.json: failed_log 'logs/nope.log' does not exist" in problems
    (run / "logs").mkdir()
    (run / "logs" / "crud-service.log").write_text("boom\n")
    moved = f"/elsewhere/results/unit/{run.name}/logs/crud-service.log"  # the run was moved
    update_run_json(run, failed_log=moved, incomplete_reason="x", failed_component="service")
    assert validate_run(run) == []


def test_a_running_run_is_a_problem(tmp_path: Path) -> None:
    run = make_run(tmp_path, status="running")
    assert any("status is 'running'" in p for p in validate_run(run))


# --- the README cannot drift from the schema -------------------------------------------------


def test_readme_holds_the_generated_schema() -> None:
    text = schema.README.read_text(encoding="utf-8")
    begin = text.index(schema.BEGIN_MARKER) + len(schema.BEGIN_MARKER)
    end = text.index(schema.END_MARKER)
    assert text[begin:end].strip() == schema.describe_markdown().strip(), (
        "results/README.md is out of date: run `cqrs-bench results schema --write`"
    )
    assert schema.with_generated_section(text) == text
    for spec in schema.TABLES:
        for col in spec.columns:
            assert f"| `{col.name}` |" in text


# --- the command line ------------------------------------------------------------------------


def test_cli_validate(run: Path, tmp_path: Path) -> None:
    cli = CliRunner()
    ok = cli.invoke(results_app, ["validate", str(run)])
    assert ok.exit_code == 0 and ok.output.strip() == f"{run}: OK (complete)"
    (run / "latency.parquet").unlink()
    bad = cli.invoke(results_app, ["validate", str(run)])
    assert bad.exit_code == 1 and "- latency.parquet is missing" in bad.output
    not_run = cli.invoke(results_app, ["validate", str(run.parent)])
    assert isinstance(not_run.exception, ValueError)
    assert "is an experiment directory" in str(not_run.exception)
    schema_out = cli.invoke(results_app, ["schema"])
    assert schema_out.exit_code == 0 and schema_out.output == schema.describe_markdown()


# --- metadata --------------------------------------------------------------------------------


def test_redact_dsn() -> None:
    redacted = metadata.redact_dsn("postgresql://bench:s3cret@db.example:5433/postgres")
    assert "s3cret" not in redacted and "bench" in redacted and "5433" in redacted
    assert "s3cret" not in metadata.redact_dsn("host=x password=s3cret")
    assert metadata.redact_dsn("postgresql://[broken") == "<unparseable DSN>"


def test_metadata_of_unreachable_server_is_null_with_reason(tmp_path: Path) -> None:
    gathered = metadata.gather("postgresql://nobody:pw@127.0.0.1:1/postgres", repo=tmp_path)
    assert gathered["postgres"]["write"]["server_version"] is None
    assert "pw" not in json.dumps(gathered["postgres"])
    assert "postgres.write" in gathered["metadata_errors"]
    assert gathered["git"] is None and "git" in gathered["metadata_errors"]
    assert gathered["versions"]["pandas"] == pd.__version__


def test_metadata_of_real_servers(servers) -> None:
    gathered = metadata.gather(servers.write_dsn, servers.read_dsn)
    errors = gathered["metadata_errors"]
    assert not any(k.startswith(("postgres", "versions")) for k in errors), errors
    for role in ("write", "read"):
        server = gathered["postgres"][role]
        assert server["server_version"] and server["server_version_num"] >= 120000
        settings = server["settings"]
        assert settings["track_commit_timestamp"]["value"] == "on"
        assert set(metadata.RELEVANT_SETTINGS) <= set(settings)
        assert settings["shared_buffers"]["source"] == "configuration file"
    versions = gathered["versions"]
    assert all(versions[k] for k in ("python", "cqrs-bench", "psycopg", "pandas", "pyarrow"))
    machine = gathered["machine"]
    assert machine["logical_cpus"] >= 1 and machine["memory_total_bytes"] > 0
    assert gathered["git"] is None or re.fullmatch(r"[0-9a-f]{40}", gathered["git"]["commit"])
    json.dumps(gathered)  # all of it fits in run.json


def test_run_metadata_starts_a_valid_run_json(servers, tmp_path: Path) -> None:
    run = create_run_dir(tmp_path, "exp")
    config = {"impls": ["crud"], "sf": 0.01, "seed": 42, "experiment": "exp"}
    record = metadata.run_metadata(run, config, servers)
    write_run_json(run, record)
    back = read_run_json(run)
    assert back["status"] == "running" and back["impls"] == ["crud"]
    assert back["dataset"]["template"].endswith("_sf0p01_seed42")
    assert {"generator_version", "write_model_schema_version"} <= set(back["dataset"])
    missing = [k for k in schema.REQUIRED_RUN_JSON_KEYS if k not in back]
    assert missing == []
    update_run_json(run, {"impls": {"crud": {"status": "complete"}}})
    finish_run_json(run, "incomplete", incomplete_reason="stopped by the test")
    assert check_run(run).problems == []  # incomplete, with every table missing
