"""The regression benchmark suites' fixtures: servers, one provisioned clone per implementation.

A session starts its own throwaway write and read servers (as the test suite does), builds the
dataset template at `--bench-sf` (default 0.1; 0.01 with `--bench-fast`) and, on first use,
provisions a clone per implementation (schema installed, history projected) with every product's
stock raised so that checkouts never fail for stock. No projector runs while benchmarks do:
commands are measured alone (for CQRS, with the outbox append they pay), and query benchmarks
catch the projection up first, so CQRS reads caught-up read models.

Read-only benchmarks run first (collection is reordered: queries, commands, projector, dataset),
so the queries see the pristine clone whatever the command benchmarks wrote.

Recorded in the saved JSON: `cqrs_bench` at the top level (PostgreSQL version and settings of
each server, sf, seed, git commit, fast mode, any test slowdown), `machine_info.cqrs_bench`
(sf, seed, fast mode: a comparison across different datasets warns), and per benchmark
`extra_info` (implementation, operation, sf, seed and the operation's own figures).
"""

from __future__ import annotations

import functools
import os
import shutil
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest

from harness.bench.driver import LINES_PER_ORDER, OrderCatalog, OrderStream, order_ids
from harness.deploy.projector import catch_up
from harness.deploy.provision import RunDatabases, attached, drop, provision, ready_for_load
from harness.postgres.servers import READ_DSN_ENV, WRITE_DSN_ENV, Servers, use_servers
from harness.postgres.standby import wait_replayed
from harness.results.metadata import git_info, postgres_servers
from implementations import registry
from implementations.domain.queries import TimeWindow
from implementations.interface import Implementation
from implementations.write_model import TRUTH_SEARCH_PATH

FULL_SF, FAST_SF, SEED = 0.1, 0.01, 42
DASHBOARD_DAYS = 7
THEMES = ("test_queries", "test_commands", "test_projector", "test_datasets")  # run order
# Test hook, for tests/test_benchmarks.py only: "side.method=seconds" (e.g.
# "queries.search_products=0.05") makes every implementation's method sleep that long per call,
# so the regression gate can be seen to fail. Never set it for a real measurement; a run with it
# says so in its header and in its JSON.
SLOWDOWN_ENV = "CQRS_BENCH_TEST_SLOWDOWN"
INFO = pytest.StashKey[dict]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("cqrs-bench")
    group.addoption(
        "--bench-sf",
        type=float,
        default=None,
        help=f"dataset scale factor (default {FULL_SF}; {FAST_SF} with --bench-fast)",
    )
    group.addoption("--bench-seed", type=int, default=SEED, help=f"dataset seed (default {SEED})")
    group.addoption(
        "--bench-fast",
        action="store_true",
        help="smoke mode: sf 0.01, one round per benchmark, no warm-up (checks still run)",
    )


def pytest_configure(config: pytest.Config) -> None:
    """Fast mode sets pytest-benchmark's own options (before its plugin reads them, trylast)."""
    if config.getoption("bench_fast"):
        config.option.benchmark_min_rounds = 1
        config.option.benchmark_max_time = 0
        config.option.benchmark_warmup = False


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    def theme(item: pytest.Item) -> int:
        stem = item.path.stem
        return THEMES.index(stem) if stem in THEMES else len(THEMES)

    items.sort(key=theme)


def pytest_report_header(config: pytest.Config) -> list[str]:
    lines = [
        f"cqrs-bench: sf {bench_sf(config):g}, seed {config.getoption('bench_seed')}"
        + (", fast mode" if config.getoption("bench_fast") else "")
    ]
    if spec := os.environ.get(SLOWDOWN_ENV):
        lines.append(f"WARNING: {SLOWDOWN_ENV}={spec} is slowing implementations down (test hook)")
    return lines


def bench_sf(config: pytest.Config) -> float:
    sf = config.getoption("bench_sf")
    return sf if sf is not None else FAST_SF if config.getoption("bench_fast") else FULL_SF


def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict) -> None:
    machine_info["cqrs_bench"] = {
        "sf": bench_sf(config),
        "seed": config.getoption("bench_seed"),
        "fast": config.getoption("bench_fast"),
    }


def pytest_benchmark_update_json(config: pytest.Config, benchmarks, output_json: dict) -> None:
    output_json["cqrs_bench"] = config.stash.get(INFO, {})


# --- servers and the dataset ---------------------------------------------------------------------


@pytest.fixture(scope="session")
def bench_servers(pytestconfig: pytest.Config) -> Iterator[Servers]:
    """A throwaway server pair owned by this session, under <repo>/.work/bench-<pid>."""
    saved = {k: os.environ.pop(k, None) for k in (WRITE_DSN_ENV, READ_DSN_ENV)}
    home = Path(__file__).resolve().parents[1] / ".work" / f"bench-{os.getpid()}"
    os.environ["CQRS_BENCH_HOME"] = str(home)
    try:
        with use_servers(announce=lambda _msg: None) as pair:
            pytestconfig.stash[INFO] = _session_info(pytestconfig, pair)
            yield pair
    finally:
        os.environ.pop("CQRS_BENCH_HOME", None)
        shutil.rmtree(home, ignore_errors=True)
        os.environ.update({k: v for k, v in saved.items() if v is not None})


def _session_info(config: pytest.Config, servers: Servers) -> dict[str, Any]:
    errors: dict[str, str] = {}
    try:
        git: dict[str, Any] | None = git_info()
    except Exception as exc:
        git, errors["git"] = None, str(exc)
    return {
        "sf": bench_sf(config),
        "seed": config.getoption("bench_seed"),
        "fast": config.getoption("bench_fast"),
        "test_slowdown": os.environ.get(SLOWDOWN_ENV),
        "postgres": postgres_servers(
            {"write": servers.write_dsn, "read": servers.read_dsn}, errors
        ),
        "git": git,
        "errors": errors,
    }


@dataclass(frozen=True)
class Dataset:
    sf: float
    seed: int


@pytest.fixture(scope="session")
def dataset(pytestconfig: pytest.Config) -> Dataset:
    return Dataset(bench_sf(pytestconfig), pytestconfig.getoption("bench_seed"))


# --- one provisioned clone per implementation ----------------------------------------------------


@dataclass(frozen=True)
class QueryParams:
    """Fixed query arguments, chosen on the pristine clone (ids are the same in every clone)."""

    order_id: int  # the newest order of the history
    customer_id: int  # the customer with the most orders (lowest id among ties)
    category: str  # the category of the most ordered active product
    window: TimeWindow  # the last DASHBOARD_DAYS days of the history


@dataclass(frozen=True)
class Target:
    """An implementation started on its own provisioned clone."""

    name: str
    impl: Implementation
    dbs: RunDatabases
    params: QueryParams
    dataset: Dataset

    def info(self, operation: str, **extra: Any) -> dict[str, Any]:
        return {
            "implementation": self.name,
            "operation": operation,
            "sf": self.dataset.sf,
            "seed": self.dataset.seed,
            **extra,
        }

    def catch_up(self) -> int:
        """Project whatever the outbox holds beyond the checkpoint (CQRS only); the events. A
        standby reader's standby replays what the primary wrote so far (the explicit wait)."""
        if registry.architecture(self.name).reads_standby:
            wait_replayed(self.dbs.write_dsn, self.dbs.read_dsn)
        return catch_up(self.impl.projection) if self.impl.projection else 0

    def write_model(self) -> psycopg.Connection:
        """A connection to the write database that sees the implementation's write model, for
        checks: its tables, or its views of them when the truth is an event store."""
        return psycopg.connect(self.dbs.write_dsn, options=f"-c search_path={TRUTH_SEARCH_PATH}")


PARAMS_SQL = """
    SELECT (SELECT max(id) FROM orders),
           (SELECT customer_id FROM orders GROUP BY customer_id
            ORDER BY count(*) DESC, customer_id LIMIT 1),
           (SELECT p.category FROM order_lines l JOIN products p ON p.id = l.product_id
            WHERE p.status = 'active' GROUP BY p.id, p.category
            ORDER BY sum(l.quantity) DESC, p.id LIMIT 1),
           (SELECT value::timestamptz FROM dataset_info WHERE key = 'history_end')
"""


def _query_params(write_dsn: str) -> QueryParams:
    with psycopg.connect(write_dsn) as conn:
        order_id, customer_id, category, end = conn.execute(PARAMS_SQL).fetchone()
    window = TimeWindow(end - timedelta(days=DASHBOARD_DAYS), end)
    return QueryParams(order_id, customer_id, category, window)


def _slow_down_for_tests(impl: Implementation) -> None:
    """The SLOWDOWN_ENV test hook (see there): wrap one method of every implementation."""
    if not (spec := os.environ.get(SLOWDOWN_ENV)):
        return
    where, seconds = spec.split("=")
    side_name, method = where.split(".")
    side = getattr(impl, side_name)
    original = getattr(side, method)

    @functools.wraps(original)
    def slowed(*args, **kwargs):
        time.sleep(float(seconds))
        return original(*args, **kwargs)

    setattr(side, method, slowed)


@pytest.fixture(scope="session")
def targets(bench_servers: Servers, dataset: Dataset) -> Iterator[Callable[[str], Target]]:
    """`get(name)`: that implementation on its own clone, provisioned on first use."""
    made: dict[str, Target] = {}
    with ExitStack() as stack:

        def get(name: str) -> Target:
            if name not in made:
                dbs = provision(
                    name,
                    bench_servers,
                    sf=dataset.sf,
                    seed=dataset.seed,
                    progress=lambda _msg: None,
                )
                stack.callback(drop, bench_servers, dbs)
                # as `run` prepares its clones: no checkout refused for stock, fresh statistics
                ready_for_load(dbs.write_dsn, dbs.read_dsn if dbs.separate else None)
                params = _query_params(dbs.write_dsn)
                impl = stack.enter_context(attached(name, dbs, pool_size=4))
                _slow_down_for_tests(impl)
                made[name] = Target(name, impl, dbs, params, dataset)
            return made[name]

        yield get


@pytest.fixture(params=registry.names())
def target(request: pytest.FixtureRequest, targets: Callable[[str], Target]) -> Target:
    """Each implementation in turn."""
    return targets(request.param)


@pytest.fixture(params=registry.projected())
def cqrs_target(request: pytest.FixtureRequest, targets: Callable[[str], Target]) -> Target:
    """Each implementation that has a projector."""
    return targets(request.param)


# --- what commands are given --------------------------------------------------------------------


@dataclass(frozen=True)
class CommandInputs:
    """What the command benchmarks act on: checkouts (the checkout driver's orders) drawn from
    half of the active products, and the other half, `spare`, which only discontinue takes."""

    orders: OrderStream
    products: list[int]  # the products checkouts order
    spare: list[int]


def _command_inputs(target: Target) -> CommandInputs:
    customers, active = order_ids(target.dbs.write_dsn)
    half = max(LINES_PER_ORDER, len(active) // 2)
    catalog = OrderCatalog.of(customers, active[:half])
    orders = OrderStream(catalog, f"bench-{uuid.uuid4().hex[:12]}-", seed=target.dataset.seed)
    return CommandInputs(orders, active[:half], active[half:])


@pytest.fixture
def inputs(target: Target) -> CommandInputs:
    return _command_inputs(target)


@pytest.fixture
def cqrs_orders(cqrs_target: Target) -> OrderStream:
    return _command_inputs(cqrs_target).orders


@pytest.fixture
def rounds(pytestconfig: pytest.Config) -> Callable[..., int]:
    """`rounds(full, fast=1)`: rounds (or warm-up rounds) for a pedantic benchmark."""
    is_fast = pytestconfig.getoption("bench_fast")
    return lambda full, fast=1: fast if is_fast else full


@pytest.fixture
def per_second() -> Callable[[Any, int], float | None]:
    """`rate(benchmark, count)`: count / the median round time (None when disabled)."""

    def rate(benchmark, count: int) -> float | None:
        return round(count / benchmark.stats.stats.median, 1) if benchmark.stats else None

    return rate
