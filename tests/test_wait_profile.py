"""pg_wait_sampling: the embedded servers preload it when it is installed, the wait profile
collector sees sleeps and lock waits with their components, and the run falls back to the
pg_stat_activity sampler (and records so) when the extension cannot be used."""

from __future__ import annotations

import threading
import time
import uuid

import pandas as pd
import psycopg
import pytest
from psycopg import sql

from harness.analysis import server_time
from harness.analysis.interference import ANALYST
from harness.collectors import wait_profile
from harness.postgres.binaries import pkglibdir
from harness.postgres.server import WAIT_SAMPLING, preload_libraries, server_settings
from harness.runner.collect import _wait_profile, choose_wait_sampler

INSTALLED = (pkglibdir() / f"{WAIT_SAMPLING}.so").is_file()
needs_extension = pytest.mark.skipif(
    not INSTALLED,
    reason=f"pg_wait_sampling is not installed in {pkglibdir()} "
    "(Debian: apt-get install postgresql-15-pg-wait-sampling)",
)


def test_embedded_servers_preload_pg_wait_sampling_only_when_installed(tmp_path, servers):
    libdir = pkglibdir()
    assert preload_libraries(libdir)[0] == "pg_stat_statements"
    assert (WAIT_SAMPLING in preload_libraries(libdir)) == INSTALLED
    # a pkglibdir without the library: the server is configured without it, so it starts
    assert preload_libraries(tmp_path) == ["pg_stat_statements"]
    assert server_settings(tmp_path)["shared_preload_libraries"] == "'pg_stat_statements'"
    with psycopg.connect(servers.write_dsn) as conn:
        loaded = conn.execute("SHOW shared_preload_libraries").fetchone()[0]
    assert ("pg_wait_sampling" in loaded.split(",")) == INSTALLED


@needs_extension
def test_profile_sees_a_sleep_and_a_lock_wait_with_their_components(contract_catalog) -> None:
    dsn = contract_catalog
    found = wait_profile.probe(dsn)
    assert found.usable, found.reason
    product = psycopg.connect(dsn).execute("SELECT min(id) FROM products").fetchone()[0]
    sampler = wait_profile.WaitProfileSampler({"write": dsn}, {dsn.rsplit("/", 1)[1]}, 0.3)
    sampler.start()
    holder = psycopg.connect(dsn, application_name="cqrs-bench:test:holder")
    holder.execute("SELECT 1 FROM products WHERE id = %s FOR UPDATE", [product])

    def sleep() -> None:
        with psycopg.connect(dsn, application_name="cqrs-bench:test:sleeper") as conn:
            conn.execute("SELECT pg_sleep(1.2)")

    def update() -> None:
        with psycopg.connect(dsn, application_name="cqrs-bench:test:commands") as conn:
            conn.execute("UPDATE products SET stock = stock + 1 WHERE id = %s", [product])

    threads = [threading.Thread(target=sleep), threading.Thread(target=update)]
    for thread in threads:
        thread.start()
    time.sleep(1.2)
    holder.commit()  # the update goes on
    holder.close()
    for thread in threads:
        thread.join(10)
    time.sleep(0.7)  # a read after the sessions ended: their last interval
    frame = sampler.stop()

    assert list(frame.columns) == list(wait_profile.COLUMNS)
    assert (frame["samples"] > 0).all() and set(frame["server"]) == {"write"}
    assert "collector" not in set(frame["component"])

    def samples(component: str) -> pd.Series:
        mine = frame[frame["component"] == component]
        return mine.groupby(["wait_event_type", "wait_event"])["samples"].sum()

    slept = samples("test:sleeper")
    # 1.2 s at 100 Hz is ~120 samples; the worker's period drifts a little, never by half
    assert slept.get(("Timeout", "PgSleep"), 0) >= 60, slept
    waited = samples("test:commands")
    assert waited.get(("Lock", "transactionid"), 0) >= 60, waited
    assert waited.idxmax() == ("Lock", "transactionid")
    # in the command-share categories the lock wait is Lock, the sleep "other" (Timeout); the
    # rest is small (a commit's WAL write is IO, CPU samples with extension 1.1.6+)
    weights = frame.assign(category=server_time.category(frame["wait_event_type"]))
    by_category = weights.groupby(["component", "category"])["samples"].sum()
    assert by_category["test:commands"].idxmax() == "Lock"
    assert by_category["test:sleeper"].idxmax() == "other"
    assert frame["interval_ms"].between(200, 1000).all()


@needs_extension
def test_the_run_records_which_wait_sampler_it_used(contract_catalog) -> None:
    found = wait_profile.probe(contract_catalog)
    sampler, used, note = _wait_profile({"write": contract_catalog})
    assert sampler is not None and note.startswith("collected")
    # the shares come from the profile only when it samples backends on CPU too (1.1.6+)
    assert used == ("pg_wait_sampling" if found.cpu_sampled else "activity")
    assert ("with CPU samples" in note) == found.cpu_sampled


def test_falls_back_to_the_activity_sampler_when_create_extension_fails(
    empty_write_model, servers
) -> None:
    """A role that may not create the (untrusted) extension: CREATE EXTENSION fails in the run
    database, as on a managed server without it; when the library is not installed at all, the
    probe stops at shared_preload_libraries."""
    role = f"nobody_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(servers.write_dsn, autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE ROLE {} LOGIN").format(sql.Identifier(role)))
    try:
        dsn = empty_write_model.replace("postgres@", f"{role}@", 1)
        found = wait_profile.probe(dsn)
        assert not found.usable
        expected = "permission denied to create extension" if INSTALLED else "not in shared"
        assert expected in found.reason
        sampler, used, note = _wait_profile({"write": dsn})
        assert sampler is None and used == "activity"
        assert note == f"not collected: {found.reason}"
        assert choose_wait_sampler(found) == ("activity", note)
    finally:
        with psycopg.connect(servers.write_dsn, autocommit=True) as admin:
            admin.execute(sql.SQL("DROP OWNED BY {0}; DROP ROLE {0}").format(sql.Identifier(role)))


def test_command_shares_count_the_profile_where_it_is_the_source() -> None:
    """Where a run's implementation has profile rows, its shares come from them (idle
    Client/ClientRead left out), the other's from its activity samples."""
    t0 = pd.Timestamp("2026-01-01 00:00:00", tz="UTC")
    base = {"run": "r", "server": "write", "database": "d", "backend_type": "client backend"}
    profile = pd.DataFrame(
        [
            {**base, "impl": "a", "ts": t0 + pd.Timedelta(seconds=s), "pid": 1,
             "component": "a:commands", "wait_event_type": etype, "wait_event": event,
             "samples": n, "interval_ms": 1000.0}
            for s, etype, event, n in (
                (1, "", "", 60),
                (1, "Lock", "transactionid", 30),
                (1, "Client", "ClientRead", 900),  # idle: not counted
                (2, "IO", "DataFileRead", 10),
            )
        ]
    )  # fmt: skip
    waits = pd.DataFrame(
        [
            {**base, "impl": impl, "ts": t0 + pd.Timedelta(seconds=1.5), "pid": 2,
             "component": f"{impl}:commands", "wait_event_type": etype, "wait_event": ""}
            for impl, etype in (("a", "Lock"), ("b", ""), ("b", ""), ("b", "LWLock"))
        ]
    )  # fmt: skip
    users = pd.DataFrame(
        [
            {"run": "r", "impl": impl, "second": t0 + pd.Timedelta(seconds=s),
             "user_class": ANALYST, "users": 4}
            for impl in ("a", "b")
            for s in range(4)
        ]
    )  # fmt: skip
    windows = pd.DataFrame(
        [
            {
                "run": "r",
                "impl": impl,
                "measure_start": t0,
                "measure_end": t0 + pd.Timedelta(4, "s"),
            }
            for impl in ("a", "b")
        ]
    )
    shares = server_time.command_shares(waits, users, windows, profile).set_index(
        ["impl", "category"]
    )
    assert set(shares.loc["a", "source"]) == {"pg_wait_sampling"}
    assert shares.loc[("a", "CPU"), "samples"] == 60
    assert shares.loc[("a", "Lock"), "share"] == pytest.approx(0.3)
    assert shares.loc[("a", "IO"), "seconds"] == pytest.approx(0.1)
    assert shares.loc[("a", "Client"), "samples"] == 0
    assert set(shares.loc["b", "source"]) == {"activity"}
    assert shares.loc[("b", "CPU"), "share"] == pytest.approx(2 / 3)
    assert shares.loc[("b", "LWLock"), "seconds"] == pytest.approx(0.1)
