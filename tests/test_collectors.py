"""The measurement collectors: pure computations against hand-computed answers, samplers against
real PostgreSQL and real processes."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pandas as pd
import psycopg
import pytest

from harness.analysis import contention
from harness.collectors import (
    ActivitySampler,
    CollectorError,
    LagSampler,
    LogTail,
    ResourceSampler,
    activity,
    db_stats,
    event_lag,
    freshness,
    lag,
    log_path,
    log_path_for,
    read_batches,
    resources,
    server_log,
    statements,
)
from harness.collectors.base import TS
from harness.postgres.servers import work_dir
from implementations.domain.commands import ChangeProductPrice
from implementations.projector import engine

BASE = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)


def at(seconds: float) -> pd.Timestamp:
    return pd.Timestamp(BASE + timedelta(seconds=seconds))


def assert_schema(frame: pd.DataFrame, schema: dict[str, str]) -> None:
    assert list(frame.columns) == list(schema)
    for column, dtype in schema.items():
        assert str(frame[column].dtype) == dtype, column


# -- freshness and event lag -----------------------------------------------------------------

EVENTS = pd.DataFrame(
    {  # (commit, applied) in seconds after BASE; e1 and e2 overlap, e3 starts while e1 pends
        "source_commit": [at(10), at(12), at(14), at(30)],
        "applied_at": [at(15), at(13), at(20), at(31)],
    }
)


@pytest.mark.parametrize(
    ("t", "expected_ms"),
    [
        (5, 0.0),  # before every event
        (10, 0.0),  # at e1's commit: pending, but 0 old
        (11, 1000.0),  # e1 pending
        (12.5, 2500.0),  # e1 and e2 pending: the oldest is e1
        (13, 3000.0),  # e2 applied exactly now (applied), e1 still pending
        (15, 1000.0),  # e1 applied exactly now; e3 (committed 14) pending
        (17, 3000.0),
        (20, 0.0),  # e3 applied exactly now; e4 not committed yet
        (30.5, 500.0),
        (40, 0.0),  # after every event
    ],
)
def test_freshness_known_answers(t: float, expected_ms: float) -> None:
    queries = pd.DataFrame({"operation": ["dashboard"], "started_at": [at(t)]})
    result = freshness(EVENTS, queries)
    assert result["freshness_ms"].iloc[0] == pytest.approx(expected_ms, abs=1e-6)


def test_freshness_keeps_query_order_and_schema() -> None:
    queries = pd.DataFrame(
        {"operation": ["b", "a", "c", "d"], "started_at": [at(17), at(11), pd.NaT, at(5)]}
    )
    result = freshness(EVENTS.iloc[::-1], queries)  # event order must not matter
    assert_schema(result, lag.FRESHNESS_COLUMNS)
    assert result["operation"].tolist() == ["b", "a", "c", "d"]
    assert result["started_at"].iloc[0] == at(17)
    assert result["freshness_ms"].iloc[[0, 1, 3]].tolist() == [3000.0, 1000.0, 0.0]
    assert math.isnan(result["freshness_ms"].iloc[2])


def test_freshness_without_events_is_zero() -> None:
    empty = pd.DataFrame({"source_commit": pd.Series([], dtype=TS), "applied_at": []})
    queries = pd.DataFrame({"operation": ["x"], "started_at": [at(1)]})
    assert freshness(empty, queries)["freshness_ms"].tolist() == [0.0]
    assert len(freshness(EVENTS, queries.iloc[:0])) == 0


def test_freshness_matches_brute_force() -> None:
    rng = np.random.default_rng(7)
    commits = rng.uniform(0, 100, 400)
    applied = commits + rng.exponential(3, 400)
    applied[5] = applied[6] = commits[6] + 1  # ties
    starts = np.concatenate([rng.uniform(-5, 110, 300), applied[:20], commits[20:40]])
    events = pd.DataFrame(
        {"source_commit": [at(c) for c in commits], "applied_at": [at(a) for a in applied]}
    )
    queries = pd.DataFrame({"operation": "q", "started_at": [at(s) for s in starts]})
    result = freshness(events, queries)["freshness_ms"].to_numpy()
    c_ns = events["source_commit"].astype("datetime64[ns, UTC]").to_numpy("int64")
    a_ns = events["applied_at"].astype("datetime64[ns, UTC]").to_numpy("int64")
    for s, got in zip(
        queries["started_at"].astype("datetime64[ns, UTC]").to_numpy("int64"), result, strict=True
    ):
        pending = c_ns[(c_ns <= s) & (s < a_ns)]
        expected = (s - pending.min()) / 1e6 if len(pending) else 0.0
        assert got == pytest.approx(expected, abs=1e-6)


def test_event_lag_from_batches(tmp_path) -> None:
    t0 = BASE.timestamp()
    batches = [
        {"applied_at": t0 + 1.0, "source_commits": [t0 + 0.25, t0 + 0.5, None]},
        {"applied_at": t0 + 2.0, "source_commits": [None, t0 + 1.9]},
        {"applied_at": t0 + 3.0, "source_commits": []},
    ]
    path = tmp_path / "applied.jsonl"
    path.write_text("".join(json.dumps(b) + "\n" for b in batches) + "\n")
    result = event_lag(read_batches(path))
    assert_schema(result, lag.EVENT_LAG_COLUMNS)
    assert result.attrs["null_commits"] == 2
    assert result["lag_ms"].tolist() == pytest.approx([750.0, 500.0, 100.0])
    assert result["source_commit"].iloc[0] == at(0.25)
    assert result["applied_at"].tolist() == [at(1), at(1), at(2)]
    # The frame feeds freshness directly: at 0.75 s the events of 0.25 and 0.5 s are pending.
    queries = pd.DataFrame({"operation": ["q"], "started_at": [at(0.75)]})
    assert freshness(result, queries)["freshness_ms"].tolist() == pytest.approx([500.0])


def test_event_lag_has_a_row_per_source_commit() -> None:
    t0 = BASE.timestamp()
    batches = [  # the commit of 0.5 s has four events over two batches
        {"applied_at": t0 + 1.0, "source_commits": [t0 + 0.25, t0 + 0.5, t0 + 0.5]},
        {"applied_at": t0 + 2.0, "source_commits": [t0 + 0.5, t0 + 0.5, t0 + 1.5]},
        {"applied_at": t0 + 3.0, "source_commits": [t0 + 1.5, None, None]},
    ]
    result = event_lag(batches)
    assert_schema(result, lag.EVENT_LAG_COLUMNS)
    assert result["source_commit"].tolist() == [at(0.25), at(0.5), at(1.5)]
    assert result["applied_at"].tolist() == [at(1), at(2), at(3)]  # each at its last event
    assert result["lag_ms"].tolist() == pytest.approx([750.0, 1500.0, 1500.0])
    assert result.attrs["null_commits"] == 2  # events, not commits
    # Freshness is that of the same events counted one row each: a commit pends until its last.
    per_event = lag.commit_lag(
        [c for b in batches for c in b["source_commits"] if c is not None],
        [b["applied_at"] for b in batches for c in b["source_commits"] if c is not None],
    )
    queries = pd.DataFrame(
        {"operation": "q", "started_at": [at(s) for s in (0.1, 0.3, 0.75, 1.0, 1.75, 2.5, 3.0)]}
    )
    assert freshness(result, queries).equals(freshness(per_event, queries))
    assert freshness(result, queries)["freshness_ms"].tolist() == pytest.approx(
        [0, 50, 500, 500, 1250, 1000, 0]
    )


def test_event_lag_of_nothing() -> None:
    result = event_lag([])
    assert_schema(result, lag.EVENT_LAG_COLUMNS)
    assert len(result) == 0 and result.attrs["null_commits"] == 0


# -- server log parsing ------------------------------------------------------------------------

P = "2026-11-26 12:00:00.123 UTC [4242] cqrs-bench:checkout app@bench_db "
LOG_LINES = [
    P + "LOG:  process 4242 still waiting for ShareLock on transaction 745 after 200.125 ms",
    P + "DETAIL:  Process holding the lock: 4200. Wait queue: 4242.",
    P + "STATEMENT:  UPDATE products SET stock = stock - 1 WHERE id = 1",
    P + "LOG:  process 4242 acquired ShareLock on transaction 745 after 1234.500 ms",
    "2026-11-26 12:00:01.5 UTC [77] psql with spaces postgres@bench_db LOG:  process 77 still "
    "waiting for ExclusiveLock on tuple (0,1) of relation 16390 of database 16384 after 200.000 ms",
    P + "ERROR:  deadlock detected",
    P + "DETAIL:  Process 4242 waits for ShareLock on transaction 1; blocked by process 4200.",
    P + "ERROR:  could not serialize access due to concurrent update",
    P + "ERROR:  could not serialize access due to read/write dependencies among transactions",
    "2026-11-26 12:00:02.000 UTC [99]  postgres@bench_db ERROR:  canceling statement due to lock "
    "timeout",
    "2026-11-26 12:00:03.000 UTC [21024]  @ LOG:  checkpoint starting: time",
    P + "LOG:  process 4242 avoided deadlock for AccessExclusiveLock on relation 1 by rearranging "
    "queue order after 200.0 ms",
    "    continuation of a multi-line statement",
    "",
]


def test_parse_log_lines() -> None:
    result = server_log.parse_lines(LOG_LINES, "write")
    assert_schema(result, server_log.COLUMNS)
    assert result["event"].tolist() == [
        "still_waiting",
        "acquired",
        "still_waiting",
        "deadlock",
        "serialization_failure",
        "serialization_failure",
        "lock_timeout",
    ]
    first = result.iloc[0]
    assert first["ts"] == pd.Timestamp("2026-11-26 12:00:00.123", tz="UTC")
    assert (first["server"], first["pid"], first["component"], first["database"]) == (
        "write",
        4242,
        "checkout",
        "bench_db",
    )
    assert (first["lock_mode"], first["object"], first["waited_ms"]) == (
        "ShareLock",
        "transaction 745",
        200.125,
    )
    assert first["message"] == LOG_LINES[0]
    assert result["waited_ms"].iloc[1] == 1234.5
    tuple_wait = result.iloc[2]
    assert tuple_wait["component"] == "psql with spaces"
    assert tuple_wait["object"] == "tuple (0,1) of relation 16390 of database 16384"
    assert tuple_wait["ts"] == pd.Timestamp("2026-11-26 12:00:01.5", tz="UTC")
    assert result["lock_mode"].iloc[3] == "" and math.isnan(result["waited_ms"].iloc[3])
    timeout = result.iloc[6]
    assert (timeout["pid"], timeout["component"], timeout["database"]) == (99, "", "bench_db")


def test_log_timestamps_with_offsets_and_zones() -> None:
    line = "2026-06-01 14:00:00.000 {} [1] a u@d ERROR:  deadlock detected"
    assert server_log.parse_line(line.format("+02"), "s")["ts"] == datetime(
        2026, 6, 1, 12, tzinfo=UTC
    )
    assert server_log.parse_line(line.format("-0530"), "s")["ts"] == datetime(
        2026, 6, 1, 19, 30, tzinfo=UTC
    )
    cest = server_log.parse_line(line.format("CEST"), "s", timezone(timedelta(hours=2)))
    assert cest["ts"] == datetime(2026, 6, 1, 12, tzinfo=UTC)
    tail = LogTail("/nonexistent", log_timezone="Europe/Berlin")
    assert tail.tz.utcoffset(datetime(2026, 6, 1)) == timedelta(hours=2)


def test_log_tail_reads_only_complete_lines_appended_after_start(tmp_path) -> None:
    path = tmp_path / "server.log"
    path.write_text(LOG_LINES[0] + "\n")
    tail = LogTail(path, "read").start()
    assert len(tail.read()) == 0
    with path.open("a") as f:
        f.write(LOG_LINES[3] + "\n" + LOG_LINES[5][:40])  # the last line is still being written
    result = tail.read()
    assert result["event"].tolist() == ["acquired"] and result["server"].tolist() == ["read"]
    with path.open("a") as f:
        f.write(LOG_LINES[5][40:] + "\n")
    assert tail.read()["event"].tolist() == ["acquired", "deadlock"]
    path.write_text(LOG_LINES[7] + "\n")  # truncated (rotated in place): read from the start
    assert tail.read()["event"].tolist() == ["serialization_failure"]


def test_log_path_is_beside_the_data_directory(tmp_path) -> None:
    from harness.postgres.server import EmbeddedServer

    server = EmbeddedServer(tmp_path / "write", "write")
    assert log_path(server.datadir) == server.logfile


# -- db_stats deltas ---------------------------------------------------------------------------


def test_deltas_known_answer() -> None:
    before = {"xact_commit": 10.0, "deadlocks": 0.0, "wal_bytes": 1000.0, "buffers_backend": None}
    after = {"xact_commit": 25.0, "deadlocks": 2.0, "wal_bytes": 5096.0, "sessions": 3.0}
    result = db_stats.deltas(before, after, "write", "bench")
    assert_schema(result, db_stats.COLUMNS)
    rows = {r.stat: (r.before, r.after, r.delta) for r in result.itertuples()}
    assert rows["xact_commit"] == (10.0, 25.0, 15.0)
    assert rows["deadlocks"] == (0.0, 2.0, 2.0)
    assert rows["wal_bytes"] == (1000.0, 5096.0, 4096.0)
    assert all(math.isnan(v) for v in rows["buffers_backend"])
    assert math.isnan(rows["sessions"][0]) and math.isnan(rows["sessions"][2])
    assert set(result["server"]) == {"write"} and set(result["database"]) == {"bench"}


def test_blocker_components_name_each_component_once() -> None:
    assert activity.blocker_components(None) == ""
    assert (
        activity.blocker_components(
            ["cqrs-bench:service", "psql", "cqrs-bench:projector", "cqrs-bench:service", "?"]
        )
        == "?,projector,psql,service"
    )


def test_lock_wait_by_blocker() -> None:
    def sample(t: float, impl: str, component: str, wait: str = "", blockers: str = "") -> dict:
        return {
            "run": "r",
            "impl": impl,
            "ts": at(t),
            "component": component,
            "wait_event_type": wait,
            "blocked_by": blockers.count(",") + bool(blockers),
            "blocker_component": blockers,
        }

    waits = pd.DataFrame(
        [
            sample(0.5, "crud", "service", "Lock", "service"),  # warm-up: left out
            *(sample(10 + i / 10, "crud", "service", "Lock", "service") for i in range(5)),
            *(
                sample(10 + i / 10, "crud", "service", "Lock", "projector,service")
                for i in range(2)
            ),
            sample(11, "crud", "projector", "Lock", "service"),
            sample(11, "crud", "service", "LWLock"),  # not a Lock
            sample(11, "crud", "service"),  # on CPU
            sample(12, "crud", "service", "Lock"),  # its blocker gone by the sample
            sample(25, "crud", "service", "Lock", "service"),  # cool-down: left out
            sample(10, "cqrs-logical", "service"),
        ]
    )
    windows = pd.DataFrame(
        {
            "run": "r",
            "impl": ["crud", "cqrs-logical"],
            "measure_start": at(10),
            "measure_end": at(20),
            "seconds": 10.0,
        }
    )
    table = contention.lock_wait_by_blocker(waits, windows)
    assert table.to_dict("records") == [
        {
            "run": "r",
            "impl": "crud",
            "component": "service",
            "blocker_component": "service",
            "samples": 5,
            "lock_wait_s": 0.5,
        },
        {
            "run": "r",
            "impl": "crud",
            "component": "service",
            "blocker_component": "projector,service",
            "samples": 2,
            "lock_wait_s": 0.2,
        },
        {
            "run": "r",
            "impl": "crud",
            "component": "projector",
            "blocker_component": "service",
            "samples": 1,
            "lock_wait_s": 0.1,
        },
        {
            "run": "r",
            "impl": "crud",
            "component": "service",
            "blocker_component": "",
            "samples": 1,
            "lock_wait_s": 0.1,
        },
    ]
    # the same session-seconds as lock_wait_seconds
    total = contention.lock_wait_seconds(waits.assign(server="write"), windows)
    seconds = total.set_index("impl")["lock_wait_s"]
    assert seconds["crud"] == pytest.approx(table["lock_wait_s"].sum())
    assert seconds["cqrs-logical"] == 0
    empty = contention.lock_wait_by_blocker(waits.iloc[:0], windows)
    assert empty.empty and list(empty.columns) == list(table.columns)


def test_empty_frames_have_the_contract_dtypes() -> None:
    assert_schema(server_log.parse_lines([], "w"), server_log.COLUMNS)
    assert_schema(db_stats.deltas({}, {}, "w", "d"), db_stats.COLUMNS)
    sampler = ActivitySampler({"write": "postgresql://unused"})
    assert_schema(sampler.frame(), activity.COLUMNS)
    assert_schema(sampler.rounds(), activity.ROUND_COLUMNS)
    assert_schema(ResourceSampler({}).frame(), resources.COLUMNS)
    assert_schema(LagSampler("x", "y").frame(), lag.LAG_COLUMNS)


def test_statements_warn_without_preloaded_library() -> None:
    class NotPreloaded:
        def execute(self, query):
            assert query == "SHOW shared_preload_libraries"  # nothing is created
            return self

        def fetchone(self):
            return ("auto_explain",)

    assert "shared_preload_libraries" in statements._unavailable(NotPreloaded())


# -- against real PostgreSQL -------------------------------------------------------------------


def admin_of(dsn: str, database: str) -> str:
    return dsn.rsplit("/", 1)[0] + f"/{database}"


def test_log_path_of_the_test_servers(servers) -> None:
    path = log_path_for(servers.write_dsn)
    # use_servers lays a throwaway pair out as <CQRS_BENCH_HOME>/servers/run-<pid>/<role>/.
    assert path == work_dir() / "servers" / f"run-{os.getpid()}" / "write" / "server.log"
    assert path != log_path_for(servers.read_dsn)
    assert log_path_for("postgresql://nobody@127.0.0.1:1/x") is None


def test_lock_wait_seen_by_sampler_and_log(servers) -> None:
    dsn = servers.write_dsn
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS collector_lock; CREATE TABLE collector_lock (id int)")
        conn.execute("INSERT INTO collector_lock VALUES (1)")
    tail = LogTail(log_path_for(dsn), "write").start()
    sampler = ActivitySampler({"write": dsn, "read": servers.read_dsn}, hz=20).start()
    holder = psycopg.connect(dsn, application_name="cqrs-bench:service")  # holds the row lock
    holder_pid = holder.info.backend_pid
    holder.execute("UPDATE collector_lock SET id = 2")
    waiter_pid = []

    def wait() -> None:
        with psycopg.connect(dsn, application_name="cqrs-bench:waiter") as conn:
            waiter_pid.append(conn.info.backend_pid)
            conn.execute("UPDATE collector_lock SET id = 3")

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.7)  # past deadlock_timeout (200 ms): the wait is logged
    holder.commit()
    holder.close()
    waiter.join(10)
    time.sleep(0.3)
    began = time.monotonic()
    waits = sampler.stop()
    assert time.monotonic() - began < 1.0
    rounds = sampler.rounds()

    assert_schema(waits, activity.COLUMNS)
    assert "collector" not in set(waits["component"])
    blocked = waits[(waits["wait_event_type"] == "Lock") & (waits["component"] == "waiter")]
    assert len(blocked) >= 3
    assert (blocked["blocked_by"] >= 1).all()
    assert set(blocked["blocker_component"]) == {"service"}  # who blocked it: the holder
    assert set(blocked["pid"]) == set(waiter_pid)
    assert set(blocked["wait_event"]) == {"transactionid"}
    assert set(blocked["server"]) == {"write"} and set(blocked["database"]) == {"postgres"}
    assert blocked["xact_age_ms"].max() > 200
    assert blocked["query_id"].notna().all()  # pg_stat_statements computes query ids
    holding = waits[waits["pid"] == holder_pid]
    assert set(holding["component"]) == {"service"}
    assert "idle in transaction" in set(holding["state"])  # (active while updating, committing)
    assert (holding["blocked_by"] == 0).all()
    assert set(waits.loc[waits["wait_event_type"] != "Lock", "blocker_component"]) == {""}
    # Rounds are counted on every server, also those with no busy session (the read server).
    assert set(rounds["server"]) == {"write", "read"}
    assert rounds.groupby("server")["sample"].nunique().min() >= 10
    assert waits["sample"].max() <= rounds["sample"].max()
    assert (rounds[rounds["server"] == "read"]["rows"] == 0).all()

    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:  # the log is written by the server, asynchronously
        logged = tail.read()
        if {"still_waiting", "acquired"} <= set(logged["event"]):
            break
        time.sleep(0.1)
    mine = logged[logged["pid"] == waiter_pid[0]]
    assert mine["event"].tolist() == ["still_waiting", "acquired"]
    assert mine["component"].tolist() == ["waiter", "waiter"]
    assert set(mine["lock_mode"]) == {"ShareLock"}
    assert mine["object"].str.startswith("transaction ").all()
    assert mine["waited_ms"].iloc[0] >= 200 and mine["waited_ms"].iloc[1] >= 500


def test_price_change_waiting_on_a_locking_read_names_its_blocker(servers, crud) -> None:
    """A dashboard-like session holds SELECT ... FOR UPDATE on a product row; the architecture's
    price change of that product waits, and its Lock samples name the holder's component."""
    dsn = crud.config.write_dsn
    database = dsn.rsplit("/", 1)[1]
    sampler = ActivitySampler({"write": servers.write_dsn}, hz=20, databases={database}).start()
    holder = psycopg.connect(dsn, application_name="cqrs-bench:dashboard")
    holder.execute("SELECT stock FROM products WHERE id = 1 FOR UPDATE").fetchone()
    changed = []
    waiter = threading.Thread(
        target=lambda: changed.append(
            crud.commands.change_product_price(ChangeProductPrice(1, 3100, "locking read test"))
        )
    )
    waiter.start()
    time.sleep(0.6)
    assert not changed  # still waiting for the row
    holder.commit()
    holder.close()
    waiter.join(10)
    waits = sampler.stop()

    assert changed and changed[0].price_cents == 3100
    blocked = waits[(waits["wait_event_type"] == "Lock") & (waits["component"] == "crud:commands")]
    assert len(blocked) >= 5
    assert set(blocked["blocker_component"]) == {"dashboard"}
    assert (blocked["blocked_by"] == 1).all()


def test_deadlock_in_the_log(servers) -> None:
    dsn = servers.write_dsn
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS collector_dl; CREATE TABLE collector_dl (id int)")
        conn.execute("INSERT INTO collector_dl VALUES (1), (2)")
    tail = LogTail(log_path_for(dsn), "write").start()
    a = psycopg.connect(dsn, application_name="cqrs-bench:a")
    b = psycopg.connect(dsn, application_name="cqrs-bench:b")
    a.execute("UPDATE collector_dl SET id = 10 WHERE id = 1")
    b.execute("UPDATE collector_dl SET id = 20 WHERE id = 2")
    errors = []

    def cross(conn, row) -> None:
        try:
            conn.execute("UPDATE collector_dl SET id = id + 100 WHERE id = %s", (row,))
        except psycopg.errors.DeadlockDetected as e:
            errors.append(e)
        conn.rollback()

    threads = [
        threading.Thread(target=cross, args=(a, 2)),
        threading.Thread(target=cross, args=(b, 1)),
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    a.close()
    b.close()
    assert len(errors) == 1
    deadline = time.monotonic() + 5
    while "deadlock" not in set((logged := tail.read())["event"]) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert logged["event"].tolist().count("deadlock") == 1
    assert set(logged[logged["event"] == "deadlock"]["component"]) <= {"a", "b"}


def test_serialization_failure_and_lock_timeout_in_the_log(servers) -> None:
    dsn = servers.write_dsn
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("DROP TABLE IF EXISTS collector_sf; CREATE TABLE collector_sf (id int)")
        conn.execute("INSERT INTO collector_sf VALUES (1)")
    tail = LogTail(log_path_for(dsn), "write").start()
    with (
        psycopg.connect(dsn, application_name="cqrs-bench:rr") as rr,
        psycopg.connect(dsn, application_name="cqrs-bench:other") as other,
    ):
        rr.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        rr.execute("SELECT * FROM collector_sf")
        other.execute("UPDATE collector_sf SET id = 2")
        other.commit()
        with pytest.raises(psycopg.errors.SerializationFailure):
            rr.execute("UPDATE collector_sf SET id = 3")
        rr.rollback()
        other.execute("UPDATE collector_sf SET id = 4")  # holds the row
        rr.execute("SET lock_timeout = '50ms'")
        with pytest.raises(psycopg.errors.LockNotAvailable):
            rr.execute("UPDATE collector_sf SET id = 5")
        rr.rollback()
        other.rollback()
    wanted = ["serialization_failure", "lock_timeout"]
    deadline = time.monotonic() + 5
    while (logged := tail.read())["event"].tolist() != wanted and time.monotonic() < deadline:
        time.sleep(0.1)
    assert logged["event"].tolist() == wanted
    assert logged["component"].tolist() == ["rr", "rr"]


def test_activity_sampler_keeps_only_given_databases(servers, empty_write_model) -> None:
    name = empty_write_model.rsplit("/", 1)[1]
    sampler = ActivitySampler({"write": servers.write_dsn}, hz=20, databases={name}).start()
    for dsn, component in ((empty_write_model, "inside"), (servers.write_dsn, "outside")):
        app = f"cqrs-bench:{component}"
        with psycopg.connect(dsn, autocommit=True, application_name=app) as conn:
            conn.execute("SELECT pg_sleep(0.4)")
    waits = sampler.stop()
    assert set(waits["database"]) == {name}
    assert "inside" in set(waits["component"]) and "outside" not in set(waits["component"])
    sleeping = waits[waits["component"] == "inside"]
    assert set(sleeping["state"]) == {"active"}
    assert (sleeping["wait_event"] == "PgSleep").mean() > 0.5  # (or on CPU, just before)


def test_sampler_failure_is_raised_by_stop(servers) -> None:
    sampler = ActivitySampler({"write": servers.write_dsn}, hz=20).start()
    time.sleep(0.2)
    with psycopg.connect(servers.write_dsn, autocommit=True) as conn:
        conn.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE application_name = 'cqrs-bench:collector' AND pid <> pg_backend_pid()"
        )
    time.sleep(0.3)
    assert sampler.error is not None
    with pytest.raises(CollectorError) as raised:
        sampler.stop()
    assert raised.value.component == "activity"
    assert "activity" in str(raised.value)
    assert raised.value.frame is not None and list(raised.value.frame.columns) == list(
        activity.COLUMNS
    )


def test_db_stats_snapshot_and_deltas(servers, empty_write_model) -> None:
    name = empty_write_model.rsplit("/", 1)[1]
    before = db_stats.snapshot(servers.write_dsn, name)
    assert set(before) == (
        set(db_stats.DATABASE_STATS) | set(db_stats.CONFLICT_STATS) | set(db_stats.SERVER_STATS)
    )
    with psycopg.connect(empty_write_model, autocommit=True) as conn:
        for i in range(5):
            conn.execute("INSERT INTO customers (name, email) VALUES (%s, %s)", ("c", f"{i}@x"))
        with pytest.raises(psycopg.errors.UniqueViolation):
            conn.execute("INSERT INTO customers (name, email) VALUES ('c', '0@x')")
    after = db_stats.snapshot(empty_write_model)  # the session ended: its stats are in
    rows = db_stats.deltas(before, after, "write", name).set_index("stat")["delta"]
    assert rows["xact_commit"] >= 5
    assert rows["xact_rollback"] >= 1
    assert rows["tup_inserted"] >= 5
    assert rows["sessions"] >= 1
    assert rows["wal_bytes"] > 0
    with pytest.raises(ValueError):
        db_stats.snapshot(servers.write_dsn, "no_such_database")


def test_statements_reset_and_read(servers, empty_write_model) -> None:
    name = empty_write_model.rsplit("/", 1)[1]
    assert statements.reset(servers.write_dsn) is None
    with psycopg.connect(empty_write_model, autocommit=True) as conn:
        for i in range(3):
            conn.execute("SELECT count(*) FROM customers WHERE id > %s", (i,))
    with psycopg.connect(servers.write_dsn, autocommit=True) as conn:
        conn.execute("SELECT 42 AS not_in_the_run_database")
    frame, warning = statements.read(servers.write_dsn, "write", {name})
    assert warning is None
    assert_schema(frame, statements.COLUMNS)
    assert set(frame["database"]) == {name} and set(frame["server"]) == {"write"}
    assert not frame.duplicated(["database", "queryid"]).any()
    mine = frame[frame["query"].str.contains("FROM customers WHERE id >")]
    assert len(mine) == 1
    row = mine.iloc[0]
    assert row["calls"] == 3 and row["rows"] == 3
    assert row["min_exec_ms"] <= row["mean_exec_ms"] <= row["max_exec_ms"]
    assert row["total_exec_ms"] == pytest.approx(row["mean_exec_ms"] * 3)
    empty, warning = statements.read(servers.write_dsn, "write", {"no_such_database"})
    assert warning is None and len(empty) == 0


def test_lag_sampler_sees_unapplied_events(empty_write_model) -> None:
    dsn = empty_write_model
    engine.install(dsn, dsn)
    sampler = LagSampler(dsn, dsn, interval=0.1).start()
    time.sleep(0.25)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO outbox (event_type, payload) VALUES ('A', '{}'), ('B', '{}')")
        committed = time.time()
    time.sleep(0.5)
    latest = sampler.latest()
    frame = sampler.stop()
    assert latest.startswith("2 events, oldest ") and latest.endswith(" ms")
    assert_schema(frame, lag.LAG_COLUMNS)
    assert frame["events_behind"].iloc[0] == 0 and math.isnan(
        frame["oldest_unapplied_age_ms"].iloc[0]
    )
    last = frame.iloc[-1]
    assert last["events_behind"] == 2
    seen = (last["ts"].timestamp() - committed) * 1000
    assert seen - 50 <= last["oldest_unapplied_age_ms"] <= seen + 500


# -- resources ---------------------------------------------------------------------------------

BUSY = "import time\nend = time.process_time() + {s}\nwhile time.process_time() < end: pass\n"
# A parent that runs three short busy children one after another (each reaped by the parent),
# then sleeps: most of its tree's CPU is spent by processes that are gone before a sample.
PARENT = (
    "import subprocess, sys, time\n"
    "for _ in range(3):\n"
    "    subprocess.run([sys.executable, '-c', {busy!r}])\n"
    "time.sleep(60)\n"
)


def test_resource_sampler_counts_cpu_and_survives_exit() -> None:
    busy = subprocess.Popen([sys.executable, "-c", BUSY.format(s=30)])
    parent = subprocess.Popen([sys.executable, "-c", PARENT.format(busy=BUSY.format(s=0.3))])
    try:
        sampler = ResourceSampler({"busy": busy.pid, "tree": parent.pid}, {"tree"}, interval=0.5)
        sampler.start()
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:  # CPU is scarce on a shared machine: wait for some
            time.sleep(0.5)
            spin = sampler.frame().query("component == 'busy'")
            if len(spin) >= 2 and spin["cpu_user_s"].iloc[-1] > 0.2:
                break
        busy.kill()
        busy.wait()
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:  # the children run, one after another
            time.sleep(0.5)
            tree = sampler.frame().query("component == 'tree'")
            cpu = tree["cpu_user_s"] + tree["cpu_system_s"]
            if len(tree) and tree["processes"].iloc[-1] == 1 and cpu.iloc[-1] > 0.8:
                break
        time.sleep(0.6)
        frame = sampler.stop()
    finally:
        for proc in (busy, parent):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    assert_schema(frame, resources.COLUMNS)
    spin = frame[frame["component"] == "busy"]
    assert len(spin) >= 2
    assert spin["cpu_user_s"].is_monotonic_increasing
    assert spin["cpu_user_s"].iloc[-1] - spin["cpu_user_s"].iloc[0] > 0.1
    assert (spin["processes"] == 1).all() and (spin["rss_bytes"] > 0).all()
    assert spin["ts"].max() < frame["ts"].max()  # no rows once it was killed, and no crash
    tree = frame[frame["component"] == "tree"]
    assert tree["processes"].max() == 2
    assert tree["cpu_user_s"].is_monotonic_increasing
    # Three children of 0.3 s CPU each (plus interpreter start-up): none is lost when it exits.
    assert tree["cpu_user_s"].iloc[-1] + tree["cpu_system_s"].iloc[-1] >= 0.8


def test_resource_sampler_add_later_and_missing_process() -> None:
    sampler = ResourceSampler(interval=0.1).start()
    sleeper = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        sampler.add("late", sleeper.pid)
        with pytest.raises(resources.psutil.NoSuchProcess):
            sampler.add("ghost", 2**22 + 12345)
        time.sleep(0.35)
    finally:
        frame = sampler.stop()
        sleeper.kill()
        sleeper.wait()
    assert set(frame["component"]) == {"late"} and len(frame) >= 2
    assert (frame["cpu_user_s"] >= 0).all()
