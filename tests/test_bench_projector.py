"""The projector benchmarks on real PostgreSQL: tiny runs that check the plumbing and the counts
(every event replayed or measured, read models checked against the write model), never speed."""

from __future__ import annotations

import time
import uuid
from dataclasses import replace

import psycopg
import pytest

from harness.bench import lag as bench_lag
from harness.bench import rebuild as bench_rebuild
from harness.bench.agreement import check_projection
from harness.bench.driver import Load
from harness.bench.errors import BenchError
from harness.bench.foreign import (
    WARN_SECONDS,
    ForeignHold,
    describe_foreign,
    watch_foreign_transactions,
)
from harness.collectors.lag import event_lag
from harness.deploy.components import ComponentFailed
from harness.deploy.projector import BATCH_SIZE, ProjectorProcess
from harness.postgres import templates
from harness.postgres.servers import Servers
from implementations import registry
from implementations.interface import Config
from implementations.projector.engine import Projector

SF, SEED = 0.01, 42


def _quiet(_message: str) -> None:
    pass


def _outbox_events(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT count(*) FROM outbox").fetchone()[0]


def test_rebuild_replays_the_whole_outbox_at_each_batch_size(dataset_clone: str) -> None:
    result = bench_rebuild.measure_rebuild(dataset_clone, [1000, 37], progress=_quiet)
    outbox = _outbox_events(dataset_clone)
    assert result.outbox_events == outbox > 0
    assert [(r.batch_size, r.events) for r in result.runs] == [(1000, outbox), (37, outbox)]
    assert all(r.seconds > 0 and r.rate > 0 for r in result.runs)
    counts = {a.what: (a.write, a.read) for a in result.agreement}
    with psycopg.connect(dataset_clone) as conn:
        orders = conn.execute("SELECT count(*) FROM orders").fetchone()[0]
    assert counts["orders"] == (orders, orders)
    assert all(a.write == a.read for a in result.agreement)
    assert "events/s" in bench_rebuild.rebuild_report(result)


def test_a_read_model_that_disagrees_is_refused(dataset_clone: str) -> None:
    bench_rebuild.measure_rebuild(dataset_clone, [1000], progress=_quiet)
    with psycopg.connect(dataset_clone) as conn:
        conn.execute("UPDATE rm_customers SET order_count = order_count + 1 WHERE customer_id = 1")
    with pytest.raises(BenchError, match="non-cancelled orders"):
        check_projection(dataset_clone, dataset_clone)


def test_a_checkpoint_short_of_the_head_is_refused(dataset_clone: str) -> None:
    impl = registry.create("cqrs-logical", Config(dataset_clone, dataset_clone))
    impl.install()
    with Projector(dataset_clone, dataset_clone, batch_size=10) as projector:
        projector.step()
    with pytest.raises(BenchError, match="is not the outbox head"):
        check_projection(dataset_clone, dataset_clone)


def test_lag_measures_every_event_the_checkout_committed(dataset_clone: str) -> None:
    result = bench_lag.measure_lag(dataset_clone, clients=2, duration=2, progress=_quiet)
    load = result.load
    assert load.committed > 0 and load.warmup == 2 and load.errors == {}
    assert result.events == load.committed  # one OrderPlaced per order, each measured once
    assert result.drain_seconds is not None  # the projector caught up, however long it took
    assert 0 < result.lag_ms["p50"] <= result.lag_ms["p99"] <= result.lag_ms["max"]
    assert 1 <= result.batches <= result.events
    assert result.projector_cpu_seconds > 0
    counts = {a.what: (a.write, a.read) for a in result.agreement}
    assert counts["orders"][0] == counts["orders"][1]
    assert "time lag" in bench_lag.lag_report(result)

    with psycopg.connect(dataset_clone) as conn:
        placed = conn.execute(
            "SELECT count(*) FROM orders WHERE idempotency_key LIKE 'lag-%'"
        ).fetchone()[0]
        holders = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
            "AND application_name = 'cqrs-bench:projector'"
        ).fetchone()[0]
    assert placed == load.committed + load.warmup
    assert holders == 0  # the projector process stopped and closed its connections


def test_lag_counts_only_events_committed_during_the_load() -> None:
    load = Load(committed=3, warmup=1, seconds=4.0, started_at=100.0, errors={})
    batches = [  # as `project run --record-lag` writes them
        {"applied_at": 100.5, "source_commits": [99.9]},
        {"applied_at": 101.01, "source_commits": [101.0, 100.99]},
        {"applied_at": 104.1, "source_commits": [103.95]},
        {"applied_at": 104.2, "source_commits": [103.95]},  # the same commit's second event
    ]
    overall, quarters = bench_lag.lag_histograms(event_lag(batches), load)
    assert overall.get_total_count() == 3  # commits
    assert bench_lag._events_of_load(batches, load) == 4
    assert overall.get_max_value() == pytest.approx(250_000, rel=1e-3)  # microseconds
    assert [q.get_total_count() for q in quarters] == [1, 1, 0, 1]  # by commit time: 1 s each


def test_a_projector_process_that_cannot_start_is_reported(dataset_clone: str, tmp_path) -> None:
    missing = templates.database_dsn(dataset_clone, f"missing_{uuid.uuid4().hex[:8]}")
    child = ProjectorProcess(
        "cqrs-logical",
        missing,
        dataset_clone,
        tmp_path / "projector.log",
        batch_size=10,
        poll_interval=0.1,
    )
    try:
        child.start()
        with pytest.raises(ComponentFailed, match="projector cannot start.*missing_"):
            child.wait_active(timeout=30)
    finally:
        child.stop()
    assert child.proc.returncode not in (None, 0)


def test_runs_drop_their_clones(servers: Servers) -> None:
    rebuilt = bench_rebuild.run_rebuild(
        write_dsn=servers.write_dsn, sf=SF, seed=SEED, progress=_quiet
    )
    ((_, lagged),) = bench_lag.run_lag(
        impls=[registry.projected()[0]],
        write_dsn=servers.write_dsn,
        sf=SF,
        seed=SEED,
        clients=1,
        duration=1,
        progress=_quiet,
    )
    assert (rebuilt.sf, lagged.sf, lagged.seed) == (SF, SF, SEED)
    assert rebuilt.runs[0].batch_size == BATCH_SIZE
    with psycopg.connect(servers.write_dsn) as conn:
        left = conn.execute(  # the rebuild's clone and the lag run's databases (not templates)
            "SELECT datname FROM pg_database WHERE datname LIKE 'bench\\_projector\\_%' "
            "OR (datname LIKE 'cqrsb\\_%' AND datname NOT LIKE 'cqrsb\\_tpl\\_%')"
        ).fetchall()
    assert left == []


def test_a_transaction_of_another_session_is_noticed(servers: Servers, dataset_clone: str) -> None:
    with watch_foreign_transactions(dataset_clone) as seen:
        with psycopg.connect(servers.write_dsn, application_name="elsewhere") as other:
            other.execute("SELECT pg_current_xact_id()")  # holds an xid: the server's xmin
            time.sleep(0.6)
    assert seen.seconds >= 0.3
    assert (
        seen.who == f"elsewhere in {psycopg.conninfo.conninfo_to_dict(servers.write_dsn)['dbname']}"
    )
    assert "WARNING" in describe_foreign(seen)


def test_lag_runs_each_implementation_at_the_paced_rate(servers):
    results = bench_lag.run_lag(
        impls=["cqrs-logical", "cqrs-physical"],
        rate=20,
        write_dsn=servers.write_dsn,
        read_dsn=servers.read_dsn,
        sf=SF,
        seed=SEED,  # the module's dataset: its templates are built already
        clients=2,
        duration=2,
        progress=lambda _m: None,
    )
    assert [name for name, _ in results] == ["cqrs-logical", "cqrs-physical"]
    for _, result in results:
        assert (
            0 < result.load.committed <= 20 * 2 + 2
        )  # paced: at most rate x duration (+ one per client)
        assert result.events > 0 and result.kept_up
    report = bench_lag.lag_compare_report(results, 20)
    assert "cqrs-physical" in report and "p99 ms" in report
    # the side-by-side warning agrees with each run's own line: a hold under WARN_SECONDS is none
    for seconds, warned in ((WARN_SECONDS / 2, False), (WARN_SECONDS, True)):
        held = [(n, replace(r, foreign=ForeignHold(seconds, "x in y"))) for n, r in results]
        assert ("WARNING" in bench_lag.lag_compare_report(held, 20)) == warned
        assert ("WARNING" in describe_foreign(held[0][1].foreign)) == warned
