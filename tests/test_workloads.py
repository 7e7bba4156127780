"""The Locust workload: mixes and shapes as data, seeded requests, the recorder, real Locust runs.

Nothing here imports Locust into the test process (it monkey-patches for gevent on import): the
Locust runs are subprocesses.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections import Counter
from pathlib import Path

import pandas as pd
import psycopg
import pytest
from background_service import BackgroundService
from hdrh.histogram import HdrHistogram

from implementations import registry
from implementations.interface import Config
from workloads import spec
from workloads.catalog import Catalog
from workloads.config import WorkloadConfig
from workloads.recorder import Recorder, append_lines, merge_seconds, new_histogram, read_seconds
from workloads.users import Planner, Popularity

ROOT = Path(__file__).resolve().parents[1]
CATALOG = Catalog(
    customers=list(range(1, 101)),
    products=list(range(1, 50)),
    retired=[50],
    categories=["Books", "Toys"],
    first_order_id=1,
    newest_order_id=1000,
)


# --- mixes and shapes ----------------------------------------------------------------------------


def test_every_shipped_mix_and_shape_loads():
    assert spec.mix_names() == [
        "checkout-max",
        "checkout-only",
        "dashboard-heavy",
        "long-reports",
        "mixed",
        "noop",
        "serializable",
    ]
    assert spec.shape_names() == ["interference", "spike", "steady", "step"]
    for name in spec.mix_names():
        mix = spec.load_mix(name)
        assert mix.classes and all(c.tasks for c in mix.classes.values())
    for name in spec.shape_names():
        assert spec.load_shape(name).stages[-1].until == 1.0
    checkout_only = spec.load_mix("checkout-only")
    assert set(checkout_only.classes) == {"Shopper", "Prober"}
    assert {op for op, _ in checkout_only.classes["Shopper"].tasks} == {"checkout", "view_order"}
    mixed = spec.load_mix("mixed")
    assert sum(mixed.count(c) for c in spec.USER_CLASSES) <= 12  # modest for 2 cores
    assert spec.load_mix(str(spec.MIXES_DIR / "mixed.toml")) == mixed  # by path too


def _write(tmp_path: Path, text: str) -> str:
    path = tmp_path / "bad.toml"
    path.write_text(textwrap.dedent(text))
    return str(path)


@pytest.mark.parametrize(
    ("text", "field", "problem"),
    [
        (
            "[classes.Buyer]\nusers = 1\ntasks = { checkout = 1 }",
            "classes.Buyer",
            "unknown user class",
        ),
        (
            "[classes.Shopper]\nusers = -1\ntasks = { checkout = 1 }",
            "classes.Shopper.users",
            ">= 0",
        ),
        (
            "[classes.Shopper]\nusers = 1.5\ntasks = { checkout = 1 }",
            "classes.Shopper.users",
            "integer",
        ),
        (
            "[classes.Shopper]\nusers = 1\ntasks = { refund = 1 }",
            "classes.Shopper.tasks.refund",
            "unknown operation",
        ),
        (
            "[classes.Shopper]\nusers = 1\ntasks = { checkout = 0 }",
            "classes.Shopper.tasks.checkout",
            "> 0",
        ),
        ("[classes.Shopper]\nusers = 1\ntasks = {}", "classes.Shopper.tasks", "at least one"),
        (
            "[classes.Shopper]\nusers = 1\nthink_min_s = 2\nthink_max_s = 1\ntasks = { checkout = 1 }",
            "classes.Shopper.think_max_s",
            ">= think_min_s",
        ),
        (
            "[classes.Analyst]\nusers = 1\nwindows_s = []\ntasks = { dashboard_revenue = 1 }",
            "classes.Analyst.windows_s",
            "non-empty",
        ),
        (
            "[classes.Shopper]\nusers = 1\nspeed = 3\ntasks = { checkout = 1 }",
            "classes.Shopper.speed",
            "unknown field",
        ),
        (
            '[classes.Shopper]\nusers = 1\nisolation = "snapshot"\ntasks = { checkout = 1 }',
            "classes.Shopper.isolation",
            "unknown level 'snapshot'; choose from 'read committed'",
        ),
        (
            "[classes.Shopper]\nusers = 1\nisolation = 3\ntasks = { checkout = 1 }",
            "classes.Shopper.isolation",
            "must be a string",
        ),
        (
            "[classes.Analyst]\nusers = 1\nreport_s = -5\ntasks = { dashboard_revenue = 1 }",
            "classes.Analyst.report_s",
            ">= 0",
        ),
        (
            "[classes.Shopper]\nusers = 1\nreport_s = 5\ntasks = { checkout = 1 }",
            "classes.Shopper.report_s",
            "only the Analyst class runs reports",
        ),
        ("[classes.Shopper]\nusers = 0\ntasks = { checkout = 1 }", "classes", "nothing would run"),
        ("classes = 3", "classes", "must be a table"),
        ("[classes", "", "not valid TOML"),
    ],
)
def test_a_bad_mix_names_its_file_and_field(tmp_path, text, field, problem):
    path = _write(tmp_path, text)
    with pytest.raises(ValueError) as caught:
        spec.load_mix(path)
    message = str(caught.value)
    assert message.startswith(path) and f": {field}:" in message or not field
    assert problem in message
    assert "\n" not in message


def test_isolation_and_report_seconds_are_read_per_class(tmp_path):
    mix = spec.load_mix(
        _write(
            tmp_path,
            """
            [classes.Shopper]
            users = 2
            isolation = "serializable"
            tasks = { checkout = 1 }
            [classes.Analyst]
            users = 1
            isolation = "repeatable read"
            report_s = 20
            tasks = { dashboard_revenue = 1 }
            [classes.Merchandiser]
            users = 1
            tasks = { restock = 1 }
            """,
        )
    )
    shopper, analyst = mix.classes["Shopper"], mix.classes["Analyst"]
    assert (shopper.isolation, shopper.report_s) == ("serializable", 0.0)
    assert (analyst.isolation, analyst.report_s) == ("repeatable read", 20.0)
    assert mix.classes["Merchandiser"].isolation == "read committed"  # the default
    recorded = mix.as_dict()["classes"]
    assert recorded["Analyst"]["report_s"] == 20.0
    assert recorded["Shopper"]["isolation"] == "serializable"
    serializable, reports = spec.load_mix("serializable"), spec.load_mix("long-reports")
    assert {c.isolation for c in serializable.classes.values() if c.count} == {"serializable"}
    assert reports.classes["Analyst"].report_s >= 10


@pytest.mark.parametrize(
    ("text", "field", "problem"),
    [
        ("[[stages]]\nuntil = 0.5\n[[stages]]\nuntil = 0.4", "stages[1].until", "> 0.5"),
        ("[[stages]]\nuntil = 0.5", "stages[0].until", "must end at 1.0"),
        (
            "[[stages]]\nuntil = 1.0\nusers = { Robot = 1 }",
            "stages[0].users.Robot",
            "unknown user class",
        ),
        ("[[stages]]\nuntil = 1.0\nusers = { Analyst = -2 }", "stages[0].users.Analyst", ">= 0"),
        (
            "[[stages]]\nuntil = 1.0\nfactor = { Analyst = 2 }\nusers = { Analyst = 2 }",
            "stages[0]",
            "both",
        ),
        ("[[stages]]\nusers = { Analyst = 2 }", "stages[0].until", "missing"),
        ("stages = []", "stages", "non-empty"),
    ],
)
def test_a_bad_shape_names_its_file_and_field(tmp_path, text, field, problem):
    path = _write(tmp_path, text)
    with pytest.raises(ValueError) as caught:
        spec.load_shape(path)
    assert str(caught.value).startswith(f"{path}: {field}: ")
    assert problem in str(caught.value)


def test_unknown_names_and_missing_files_are_clear():
    with pytest.raises(
        ValueError, match="unknown mix 'nope'; choose from checkout-max, checkout-only"
    ):
        spec.load_mix("nope")
    with pytest.raises(
        ValueError, match="unknown shape 'ramp'; choose from interference, spike, steady, step"
    ):
        spec.load_shape("ramp")
    with pytest.raises(ValueError, match="does not exist"):
        spec.load_shape("/no/such/shape.toml")


def test_shape_targets_over_a_run():
    mixed = spec.load_mix("mixed")
    step, spike, steady = (spec.load_shape(n) for n in ("step", "spike", "steady"))
    at = [0, 19.9, 20, 45, 60, 79, 80, 99.9, 100, 150]
    assert [step.target(mixed, "Analyst", t, 100) for t in at] == [0, 0, 1, 2, 4, 4, 8, 8, 8, 8]
    assert {step.target(mixed, "Shopper", t, 100) for t in at} == {8}
    assert [spike.target(mixed, "Analyst", t, 300) for t in (0, 119, 120, 179, 180)] == [
        2,
        2,
        8,
        8,
        2,
    ]
    assert {steady.target(mixed, c, 33, 100) for c in ("Shopper", "Prober")} == {8, 1}
    assert step.peak(mixed, "Analyst") == 8 and spike.peak(mixed, "Analyst") == 8
    assert step.target(spec.load_mix("checkout-only"), "Analyst", 90, 100) == 8  # absolute counts
    assert step.rate_factor(mixed, "Analyst", 90, 100) == 4.0  # open loop: 8 of the mix's 2


def test_the_warm_up_runs_the_first_stage_with_every_class_present():
    heavy, shape = spec.load_mix("dashboard-heavy"), spec.load_shape("interference")
    # negative elapsed: the warm-up (10 s) before the measured window; stages are fractions of
    # the measured 40 s; the warm-up's first half runs every class, its second the first stage
    at = (-10, -5.1, -5, -0.1, 0, 9.9, 10, 20, 30, 39)
    assert [shape.target(heavy, "Analyst", t, 40, 10) for t in at] == [
        1,
        1,
        0,
        0,
        0,
        0,
        4,
        8,
        16,
        16,
    ]
    assert {shape.target(heavy, "Shopper", t, 40, 10) for t in (-9, -1, 0, 35)} == {6}
    assert shape.rate_factor(heavy, "Analyst", -9, 40, 10) == 1 / 6  # one of the mix's six
    assert shape.rate_factor(heavy, "Analyst", -1, 40, 10) == 0.0
    assert shape.rate_factor(heavy, "Analyst", 1, 40, 10) == 0.0
    checkout_only = spec.load_mix("checkout-only")  # a class the mix never runs stays absent
    assert spec.load_shape("steady").target(checkout_only, "Analyst", -9, 40, 10) == 0


# --- seeded requests -----------------------------------------------------------------------------


def _requests(seed: int, user_class: str = "Shopper", index: int = 0, n: int = 200):
    mix = spec.load_mix("mixed")
    planner = Planner(
        mix.classes[user_class], CATALOG, Popularity(CATALOG.products, seed), seed, index
    )
    return [planner.next() for _ in range(n)]


def test_the_same_seed_gives_the_same_requests_and_another_seed_others():
    assert _requests(42) == _requests(42)
    assert _requests(42, "Analyst", 3) == _requests(42, "Analyst", 3)
    assert _requests(42) != _requests(43)
    assert _requests(42, index=0) != _requests(42, index=1)


def test_requests_follow_the_mix_and_the_catalog():
    shopper = _requests(7, n=2000)
    ops = Counter(r.operation for r in shopper)
    assert set(ops) == {"checkout", "view_order", "customer_orders", "search"}
    assert 0.55 < ops["checkout"] / 2000 < 0.65  # weight 6 of 10
    keys = [r.args["key"] for r in shopper if r.operation == "checkout"]
    assert len(set(keys)) == len(keys) and keys[0].startswith("7-Shopper-0-")
    for r in shopper:
        if r.operation == "checkout":
            products = [p for p, _ in r.args["lines"]]
            assert 1 <= len(products) <= 4 and len(set(products)) == len(products)
            assert set(products) <= set(CATALOG.products)  # never a retired product
            assert all(1 <= q <= 3 for _, q in r.args["lines"])
    analyst = _requests(7, "Analyst", n=300)
    assert {r.args["window_s"] for r in analyst} == set(spec.DEFAULT_WINDOWS_S)
    merchandiser = _requests(7, "Merchandiser", n=3000)
    discontinued = {r.args["product_id"] for r in merchandiser if r.operation == "discontinue"}
    assert discontinued == set(CATALOG.retired)


def test_product_choice_is_skewed():
    popularity = Popularity(CATALOG.products, 42)
    rng = __import__("random").Random(1)
    counts = Counter(popularity.pick(rng) for _ in range(20_000))
    top = counts.most_common()
    assert top[0][0] == popularity.ranking[0]
    assert top[0][1] > 10 * top[-1][1]  # hot rows
    assert Popularity(CATALOG.products, 42).ranking == popularity.ranking


# --- catalog and config --------------------------------------------------------------------------


def test_catalog_from_a_dataset_clone(dataset_clone):
    catalog = Catalog.from_database(dataset_clone)
    assert len(catalog.customers) == 100  # sf 0.01
    assert catalog.retired and not set(catalog.retired) & set(catalog.products)
    assert max(catalog.products) < min(catalog.retired)
    with psycopg.connect(dataset_clone) as conn:
        active = conn.execute(
            "SELECT count(*), count(DISTINCT category) FROM products WHERE status = 'active'"
        ).fetchone()
    assert len(catalog.products) + len(catalog.retired) == active[0]
    assert len(catalog.categories) == active[1] and catalog.categories == sorted(catalog.categories)
    assert catalog.first_order_id >= 1 and catalog.newest_order_id > catalog.first_order_id
    assert Catalog.from_json(catalog.to_json()) == catalog


def test_config_round_trips_and_rejects_nonsense():
    config = WorkloadConfig(
        transport="inproc",
        write_dsn="postgresql://x/y",
        arrival_rate=50.0,
        catalog=CATALOG.to_dict(),
        seed=7,
    )
    assert WorkloadConfig.from_json(config.to_json()) == config
    with pytest.raises(ValueError, match="transport: must be one of http, inproc"):
        WorkloadConfig(transport="grpc")
    with pytest.raises(ValueError, match="write_dsn"):
        WorkloadConfig(transport="inproc")
    with pytest.raises(ValueError, match="catalog"):
        WorkloadConfig(transport="http")
    with pytest.raises(ValueError, match="unknown field"):
        WorkloadConfig.from_json('{"users": 3}')
    with pytest.raises(ValueError, match="arrival_rate"):
        WorkloadConfig(catalog_dsn="x", arrival_rate=0)


# --- recorder ------------------------------------------------------------------------------------


class Clock:
    def __init__(self, now: float) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def test_merged_seconds_equal_one_histogram_fed_every_value(tmp_path):
    import random

    rng = random.Random(3)
    direct = {s: new_histogram() for s in (100, 101)}
    for part in ("a", "b"):
        clock = Clock(100.0)
        recorder = Recorder(tmp_path / part, clock=clock)
        for second in (100, 101):
            clock.now = second + 0.5
            for _ in range(500):
                value = rng.lognormvariate(8, 1.5)
                recorder.record("checkout", "service", value)
                direct[second].record_value(round(value))
            recorder.record("checkout", "service", 0, "out_of_stock")
            recorder.on_request(name="view_order", response_time=1.5, exception=None)
            clock.now = second + 1.1
            recorder.flush()  # second done; a later line for the same second must add up too
            recorder.record("checkout", "service", 5_000) if part == "b" and second == 100 else None
        recorder.flush(everything=True)
    direct[101].record_value(5_000)  # recorded at clock 101.1
    paths = sorted(tmp_path.glob("*/seconds-*.jsonl"))
    assert len(paths) == 2
    rows = {(s, op, kind): (n, errors, h) for s, op, kind, n, errors, h in merge_seconds(paths)}
    assert set(rows) == {
        (s, op, "service") for s in (100, 101) for op in ("checkout", "view_order")
    }
    for second in (100, 101):
        count, errors, merged = rows[(second, "checkout", "service")]
        assert errors == {"out_of_stock": 2}
        assert count == direct[second].get_total_count()
        assert merged.encode() == direct[second].encode()
        for pct in (50, 99, 99.9, 100):
            assert merged.get_value_at_percentile(pct) == direct[second].get_value_at_percentile(
                pct
            )
        assert rows[(second, "view_order", "service")][0] == 2
    line = json.loads(paths[0].read_text().splitlines()[0])
    assert set(line) == {"second", "pid", "ops"}
    assert set(line["ops"][0]) == {"operation", "kind", "count", "errors", "retries", "hdr"}
    assert HdrHistogram.decode(line["ops"][0]["hdr"]).get_total_count() == line["ops"][0]["count"]


def test_recorder_lines_carry_the_users_and_merge_sums_them(tmp_path):
    """Per process the last line's users of a second, summed over processes (and workers); a
    second with users but no request has a line; at the stop the held users count."""
    users = {"Shopper": 3, "Analyst": 1}
    clock = Clock(100.5)
    a = Recorder(tmp_path / "a", clock=clock, users=lambda: users)
    a.record("checkout", "service", 1000)
    clock.now = 101.1
    a.flush()  # 100: 3 + 1
    users = {"Shopper": 4, "Analyst": 0}
    clock.now = 101.5
    a.record("checkout", "service", 1000)
    a.flush(everything=True)  # 101: 4 + 0 ...
    clock.now = 101.7
    a.record("checkout", "service", 1000)
    users = {"Shopper": 5, "Analyst": 0}
    clock.now = 102.1
    a.flush()  # ... then 5 + 0: the last line of 101 counts
    clock.now = 104.2
    a.flush()  # 102 and 103: no request, users acting
    a.hold_users()  # stopping: 5 + 0 until released
    users = {"Shopper": 0, "Analyst": 0}
    clock.now = 104.5
    a.record("checkout", "service", 1000)
    a.flush(everything=True)  # 104: the held 5 + 0
    a.release_users()
    clock.now = 107.3
    a.flush()  # no users, no request: no line

    b_clock = Clock(100.2)
    b = Recorder(tmp_path / "b", clock=b_clock, users=lambda: {"Shopper": 2, "Analyst": 2})
    b.record("checkout", "service", 1000)
    b_clock.now = 101.0
    b.flush()
    b_clock.now = 103.0
    b.flush()  # 101 and 102

    old = Recorder(tmp_path / "old", clock=Clock(100.5))  # an older file: lines without users
    old.record("checkout", "service", 1000)
    old.flush(everything=True)

    worker = Recorder(None, clock=Clock(100.5), users=lambda: {"Shopper": 1})
    worker.record("checkout", "service", 1000)
    worker.flush(everything=True)
    lines, _queries = worker.take()
    for index in (0, 1):  # two workers' lines in the master's file (same pid here)
        append_lines(tmp_path / "master.jsonl", lines, worker=index)

    a_lines = list(read_seconds(a.seconds_path))
    assert [line["second"] for line in a_lines] == [100, 101, 101, 102, 103, 104]
    assert all(set(line) == {"second", "pid", "ops", "users"} for line in a_lines)
    assert [len(line["ops"]) for line in a_lines] == [1, 1, 1, 0, 0, 1]
    assert a_lines[-1]["users"] == {"Shopper": 5, "Analyst": 0}
    assert set(next(read_seconds(old.seconds_path))) == {"second", "pid", "ops"}

    paths = [a.seconds_path, b.seconds_path, old.seconds_path, tmp_path / "master.jsonl"]
    merged = merge_seconds(paths)
    assert merged.users == {
        100: {"Shopper": 3 + 2 + 2, "Analyst": 1 + 2},
        101: {"Shopper": 5 + 2, "Analyst": 0 + 2},
        102: {"Shopper": 5 + 2, "Analyst": 0 + 2},
        103: {"Shopper": 5, "Analyst": 0},
        104: {"Shopper": 5, "Analyst": 0},
    }
    counts = {(second, op): n for second, op, _kind, n, _errors, _h in merged}
    assert counts == {(100, "checkout"): 5, (101, "checkout"): 2, (104, "checkout"): 1}


# --- real Locust runs ----------------------------------------------------------------------------


def _locust(
    config: WorkloadConfig, tmp_path: Path, run_time: int = 6
) -> subprocess.CompletedProcess:
    path = tmp_path / "workload.json"
    path.write_text(config.to_json())
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        "workloads/locustfile.py",
        "--headless",
        "--run-time",
        f"{run_time}s",
        "--cqrs-config",
        str(path),
        "--exit-code-on-error",
        "0",
        "--only-summary",
    ]
    proc = subprocess.Popen(
        command,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )
    try:
        output, _ = proc.communicate(timeout=run_time + 60)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        output, _ = proc.communicate()
        pytest.fail(f"locust did not finish:\n{output[-3000:]}")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
    return subprocess.CompletedProcess(command, proc.returncode, output)


def _check_results(out_dir: Path, output: str) -> dict:
    merged = merge_seconds(out_dir.glob("seconds-*.jsonl"))
    rows = list(merged)
    assert rows, output[-3000:]
    total: dict[tuple[str, str], HdrHistogram] = {}
    errors: Counter = Counter()
    for _second, op, kind, _count, errs, hist in rows:
        total.setdefault((op, kind), new_histogram()).add(hist)
        errors.update({(op, e): n for e, n in errs.items()})
    checkout = total[("checkout", "service")]
    assert checkout.get_total_count() > 0, output[-3000:]
    assert 0 < checkout.get_min_value() <= checkout.get_value_at_percentile(50) < 10_000_000
    queries = [
        json.loads(x) for p in out_dir.glob("queries-*.jsonl") for x in p.read_text().splitlines()
    ]
    users = pd.DataFrame.from_dict(merged.users, orient="index")  # second x class
    return {"total": total, "errors": errors, "queries": queries, "users": users}


def test_locust_inproc_against_crud(dataset_clone, tmp_path):
    registry.create("crud", Config(dataset_clone, dataset_clone)).install()
    out = tmp_path / "out"
    config = WorkloadConfig(
        transport="inproc",
        impl="crud",
        write_dsn=dataset_clone,
        mix="mixed",
        seed=42,
        duration_s=6,
        out_dir=str(out),
    )
    result = _locust(config, tmp_path)
    assert result.returncode == 0, result.stdout[-3000:]
    found = _check_results(out, result.stdout)
    ops = {op for op, kind in found["total"] if kind == "service"}
    assert {"checkout", "view_order", "dashboard_revenue"} <= ops, ops
    visibility = found["total"].get(("ryw_visibility", "visibility"))
    assert visibility is not None and visibility.get_total_count() > 0
    assert visibility.get_value_at_percentile(50) < 1_000_000  # crud: about immediate
    assert found["queries"] and {q["ok"] for q in found["queries"]} == {True}
    users = found["users"]  # every class of the mix, at most (and mostly) the mix's count
    assert sorted(users.columns) == ["Analyst", "Merchandiser", "Prober", "Shopper"]
    assert users.max().to_dict() == {"Shopper": 8, "Analyst": 2, "Merchandiser": 1, "Prober": 1}
    assert (users["Shopper"] == 8).mean() > 0.5, users
    assert not {e for (_op, e) in found["errors"]} - {
        "out_of_stock",
        "product_discontinued",
        "invalid_transition",
    }, found["errors"]


def test_locust_http_open_loop(dataset_clone, tmp_path):
    impl = registry.create("crud", Config(dataset_clone, dataset_clone, pool_size=8))
    impl.install()
    impl.start()
    out = tmp_path / "out"
    try:
        with BackgroundService(impl) as url:
            config = WorkloadConfig(
                transport="http",
                host=url,
                catalog_dsn=dataset_clone,
                mix="checkout-only",
                arrival_rate=30.0,
                duration_s=5,
                out_dir=str(out),
            )
            result = _locust(config, tmp_path, run_time=5)
    finally:
        impl.stop()
    assert result.returncode == 0, result.stdout[-3000:]
    found = _check_results(out, result.stdout)
    intended = found["total"][("checkout", "intended")]
    assert intended.get_total_count() > 20  # about 30/s for 5 s, most of it checkouts
    service = found["total"][("checkout", "service")]
    assert intended.get_value_at_percentile(50) >= service.get_min_value()
    assert found["total"][("ryw_visibility", "visibility")].get_total_count() > 0  # silent polls
    users = found["users"]  # open loop: the schedulers, one per class of the mix
    assert users.max().to_dict() == {"Shopper": 1, "Prober": 1}, users


GEVENT_CHECK = """
import locust, time, gevent
from implementations import registry
from implementations.interface import Config
from sqlalchemy import text
impl = registry.create("crud", Config({dsn!r}, {dsn!r}, pool_size=8))
impl.start()
def nap():
    with impl.engines[1].connect() as conn:
        conn.execute(text("SELECT pg_sleep(0.5)"))
start = time.perf_counter()
gevent.joinall([gevent.spawn(nap) for _ in range(6)])
print(round(time.perf_counter() - start, 2))
impl.stop()
"""


def test_inproc_calls_yield_to_other_greenlets(dataset_clone):
    """Six 0.5 s statements through an implementation's pool overlap under Locust's gevent."""
    result = subprocess.run(
        [sys.executable, "-c", GEVENT_CHECK.format(dsn=dataset_clone)],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=ROOT,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert float(result.stdout.split()[-1]) < 1.5  # serial would be 3 s


ERRORS_CHECK = """
import json, sys, locust
from types import SimpleNamespace
from workloads.config import WorkloadConfig
from workloads.transports import create_transport
from workloads.users import OperationError

class Events:
    def __init__(self):
        self.seen = []
    def fire(self, **kw):
        self.seen.append((kw["name"], getattr(kw["exception"], "error_type", None)))

from workloads.catalog import Catalog
products = Catalog.from_database({dsn!r}).products
for n, (transport, extra) in enumerate((("inproc", {{}}), ("http", {{"host": sys.argv[1]}}))):
    gone = products[-1 - n]
    events = Events()
    env = SimpleNamespace(events=SimpleNamespace(request=events), host=None)
    config = WorkloadConfig(transport=transport, write_dsn={dsn!r}, catalog_dsn={dsn!r}, **extra)
    t = create_transport(config, env)
    t.start()
    client = t.client(2)
    for call in (lambda: client.place_order("checkout", 10**9, ((1, 1),), "k1"),
                 lambda: client.order_summary("view_order", 10**9),
                 lambda: client.restock("restock", 1, 10**9),
                 lambda: client.place_order("checkout", 1, ((1, 10**6),), "k2"),
                 lambda: client.discontinue("discontinue", gone),
                 lambda: client.place_order("checkout", 1, ((gone, 1),), f"k3-{{n}}")):
        try:
            call()
        except OperationError:
            pass
    print(json.dumps([transport, events.seen, client.order_visible(10**9), client.order_visible(1)]))
    t.stop()
"""


def test_both_transports_name_errors_alike(dataset_clone):
    """404, 422 and 409 reach Locust under the same operation names and error types either way."""
    impl = registry.create("crud", Config(dataset_clone, dataset_clone, pool_size=4))
    impl.install()
    impl.start()
    try:
        with BackgroundService(impl) as url:
            result = subprocess.run(
                [sys.executable, "-c", ERRORS_CHECK.format(dsn=dataset_clone), url],
                capture_output=True,
                text=True,
                timeout=60,
                cwd=ROOT,
            )
    finally:
        impl.stop()
    assert result.returncode == 0, result.stderr[-3000:]
    (_, inproc, *visible_inproc), (_, http, *visible_http) = map(
        json.loads, result.stdout.splitlines()
    )
    assert inproc == http, (inproc, http)
    assert inproc == [
        ["checkout", "not_found"],
        ["view_order", "not_found"],
        ["restock", "invalid_input"],
        ["checkout", "invalid_input"],
        ["discontinue", None],
        ["checkout", "product_discontinued"],
    ]
    assert visible_inproc == visible_http == [False, True]
