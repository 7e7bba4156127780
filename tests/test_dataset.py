"""The seeded dataset: deterministic generation, the template database, clones, and the event history."""

from __future__ import annotations

import hashlib
import json
import math
import subprocess
import sys
import threading
from collections import Counter
from datetime import UTC, datetime, timedelta

import psycopg
import pytest
import typer
from typer.testing import CliRunner

from harness.cli.load import load
from harness.postgres import templates
from harness.postgres.templates import (
    DatasetError,
    clone,
    drop_database,
    ensure_template,
    template_name,
)
from implementations.domain import events as ev
from implementations.write_model import SCHEMA_VERSION
from workloads.dataset import ANCHOR, GENERATOR_VERSION, TABLES, Scale, generate

SF, SEED = 0.05, 7
FIXED_NOW = datetime(2030, 6, 1, 12, 0, 30, tzinfo=UTC)
ORDER_BY = {
    "customers": "id",
    "products": "id",
    "price_history": "id",
    "orders": "id",
    "order_lines": "order_id, line_no",
    "outbox": "position",
    "dataset_info": "key",
}
quiet = lambda _message: None  # noqa: E731


@pytest.fixture(scope="module")
def dataset():
    return generate(SF, SEED)


@pytest.fixture(scope="module")
def template(servers):
    return ensure_template(servers.write_dsn, SF, SEED, progress=quiet)


@pytest.fixture(scope="module")
def clone_dsn(servers, template):
    dsn = clone(servers.write_dsn, template.name, "test_dataset_clone")
    yield dsn
    drop_database(servers.write_dsn, "test_dataset_clone")


def rows(dsn: str, query: str, params=()) -> list[tuple]:
    with psycopg.connect(dsn, options="-c timezone=UTC") as conn:
        return conn.execute(query, params).fetchall()


def copy_out(dsn: str, query: str) -> bytes:
    with psycopg.connect(dsn, options="-c timezone=UTC") as conn, conn.cursor() as cur:
        with cur.copy(f"COPY ({query}) TO STDOUT") as copy:
            return b"".join(bytes(block) for block in copy)


def table_lines(dataset, table: str) -> list[list[str]]:
    return [line.split("\t") for line in dataset.text(table).splitlines()]


# --- generation ----------------------------------------------------------------------------------


def test_same_seed_gives_byte_identical_rows():
    first, second = generate(0.01, 3), generate(0.01, 3)
    assert all(first.text(table) == second.text(table) for table in TABLES)
    assert first.checksum == second.checksum


# The checksum of generate(0.01, 3) when generator 3 was written. Templates are keyed by
# GENERATOR_VERSION: if this changes without a bump, old templates hold other rows than the name
# promises (a NumPy or Arrow upgrade that changed a stream or a rendering would show here).
GOLDEN_CHECKSUM = "ac85c7c72ccc9001b186b55281772096ce59074c74fff731ea2d3a237cab93b6"


def test_a_seed_gives_the_same_rows_in_another_process_and_release():
    script = "from workloads.dataset import generate; print(generate(0.01, 3).checksum)"
    other = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    assert other.stdout.strip() == generate(0.01, 3).checksum == GOLDEN_CHECKSUM


def test_different_seed_gives_a_different_checksum():
    assert generate(0.01, 3).checksum != generate(0.01, 4).checksum


def test_scale_sets_the_counts(dataset):
    assert (Scale(1, 0).customers, Scale(1, 0).products, Scale(1, 0).orders) == (
        10_000,
        2_000,
        200_000,
    )
    tiny = Scale(0.0001, 0)
    assert (tiny.customers, tiny.products, tiny.categories, tiny.orders) == (1, 20, 20, 20)
    assert dataset.rows["customers"] == 500 and dataset.rows["products"] == 100
    assert dataset.rows["orders"] == 10_000
    assert len({line[3] for line in table_lines(dataset, "products")}) == 20


@pytest.mark.parametrize("sf", [0, -1, 100.5, math.nan, math.inf, 0.00001, True, "1"])
def test_rejects_a_bad_scale_factor(sf):
    with pytest.raises(ValueError, match="sf"):
        generate(sf, 1)


@pytest.mark.parametrize("seed", [-1, 2**31, 1.5, None])
def test_rejects_a_bad_seed(seed):
    with pytest.raises(ValueError, match="seed"):
        template_name(1, seed)


def test_template_name_spells_schema_generator_scale_and_seed():
    expected = f"cqrsb_tpl_v{SCHEMA_VERSION}_g{GENERATOR_VERSION}_sf0p25_seed42"
    assert template_name(0.25, 42) == expected
    assert template_name(2.0, 1).endswith("_sf2_seed1")


def test_orders_have_the_documented_shape(dataset):
    lines_by_order: dict[str, list[list[str]]] = {}
    for line in table_lines(dataset, "order_lines"):
        lines_by_order.setdefault(line[0], []).append(line)
    orders = table_lines(dataset, "orders")
    counts = [len(lines_by_order[o[0]]) for o in orders]
    assert min(counts) >= 1 and max(counts) <= 8 and 2.0 < sum(counts) / len(counts) < 3.0
    for order_id, status, total, key in ((o[0], o[2], int(o[3]), o[5]) for o in orders):
        lines = lines_by_order[order_id]
        assert len({line[2] for line in lines}) == len(lines)
        assert all(1 <= int(line[3]) <= 5 for line in lines)
        assert total == sum(int(line[3]) * int(line[4]) for line in lines)
        assert key == f"seed{SEED}-order{order_id}" and status in ("placed", "shipped", "cancelled")
    statuses = Counter(o[2] for o in orders)
    assert (
        statuses["shipped"] > 0.8 * len(orders)
        and 0.02 < statuses["cancelled"] / len(orders) < 0.08
    )


def test_product_popularity_is_skewed(dataset):
    units = Counter()
    for line in table_lines(dataset, "order_lines"):
        units[line[2]] += int(line[3])
    top = sum(n for _p, n in units.most_common(dataset.rows["products"] // 10))
    assert top > 0.4 * sum(units.values())


def test_newest_order_is_in_the_last_hour_before_the_anchor(dataset):
    newest = max(datetime.fromisoformat(o[4]) for o in table_lines(dataset, "orders"))
    assert ANCHOR - timedelta(hours=1) <= newest < ANCHOR
    last_event = datetime.fromisoformat(table_lines(dataset, "outbox")[-1][2])
    assert last_event < ANCHOR


# --- the template ---------------------------------------------------------------------------------


def test_template_holds_exactly_the_generated_rows(servers, template, dataset):
    dsn = templates.database_dsn(servers.write_dsn, template.name)
    info = dict(rows(dsn, "SELECT key, value FROM dataset_info"))
    assert info["checksum"] == template.checksum == dataset.checksum
    assert (info["sf"], info["seed"], info["anchor"]) == ("0.05", str(SEED), ANCHOR.isoformat())
    digest = hashlib.sha256()
    for table, columns in TABLES.items():
        order = ORDER_BY[table]
        text = copy_out(dsn, f"SELECT {', '.join(columns)} FROM {table} ORDER BY {order}")
        assert text.count(b"\n") == dataset.rows[table] == template.rows[table]
        assert text == dataset.text(table).encode(), table
        digest.update(f"{table}\n{hashlib.sha256(text).hexdigest()}\n".encode())
    assert digest.hexdigest() == dataset.checksum


def test_template_is_marked_and_no_half_build_is_left(servers, template):
    databases = dict(rows(servers.write_dsn, "SELECT datname, datistemplate FROM pg_database"))
    assert databases[template.name] is True
    assert not [name for name in databases if "_building_" in name]


def test_concurrent_builds_build_once_and_rebuild_builds_again(servers):
    results: list = []
    build = lambda: results.append(ensure_template(servers.write_dsn, 0.01, 11, progress=quiet))  # noqa: E731
    threads = [threading.Thread(target=build) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(info.built for info in results) == [False, False, True]
    assert len({info.checksum for info in results}) == 1
    rebuilt = ensure_template(servers.write_dsn, 0.01, 11, progress=quiet, rebuild=True)
    assert rebuilt.built and rebuilt.checksum == results[0].checksum
    assert drop_database(servers.write_dsn, rebuilt.name) is True
    assert drop_database(servers.write_dsn, rebuilt.name) is False


def test_load_command_builds_then_keeps_the_template(servers):
    app = typer.Typer()
    app.command()(load)
    args = ["--sf", "0.01", "--seed", "12", "--write-dsn", servers.write_dsn]
    first, second = CliRunner().invoke(app, args), CliRunner().invoke(app, args)
    assert first.exit_code == 0 and "built template cqrsb_tpl_" in first.output
    printed = first.output.rsplit("checksum ", 1)[1].strip()
    assert printed == generate(0.01, 12).checksum
    assert second.exit_code == 0 and "already built" in second.output
    assert CliRunner().invoke(app, ["--sf", "0", "--write-dsn", servers.write_dsn]).exit_code == 2
    drop_database(servers.write_dsn, template_name(0.01, 12))


# --- clones ---------------------------------------------------------------------------------------


def table_digests(dsn: str) -> dict[str, str]:
    return {
        table: rows(dsn, f"SELECT md5(string_agg(t::text, '|' ORDER BY {order})) FROM {table} t")[
            0
        ][0]
        for table, order in ORDER_BY.items()
    }


def schema(dsn: str) -> list[tuple]:
    """Columns, indexes and constraints as the catalog describes them."""
    return rows(
        dsn,
        """SELECT table_name, column_name, data_type, column_default, is_nullable, is_identity
           FROM information_schema.columns WHERE table_schema = 'public'
           UNION ALL SELECT tablename, indexname, indexdef, NULL, NULL, NULL
           FROM pg_indexes WHERE schemaname = 'public'
           UNION ALL SELECT conrelid::regclass::text, conname, pg_get_constraintdef(oid), NULL, NULL,
                            NULL
           FROM pg_constraint WHERE connamespace = 'public'::regnamespace
           ORDER BY 1, 2, 3""",
    )


def test_two_clones_are_identical(servers, template):
    names = ("test_clone_a", "test_clone_b")
    dsns = [clone(servers.write_dsn, template.name, name, now=FIXED_NOW) for name in names]
    try:
        assert table_digests(dsns[0]) == table_digests(dsns[1])
    finally:
        for name in names:
            drop_database(servers.write_dsn, name)


def test_clone_history_ends_now(servers, template, clone_dsn):
    info = dict(rows(clone_dsn, "SELECT key, value FROM dataset_info"))
    ((newest, now),) = rows(clone_dsn, "SELECT max(placed_at), now() FROM orders")
    history_end = datetime.fromisoformat(info["history_end"])
    assert now - timedelta(minutes=2) < history_end <= now
    assert history_end - timedelta(hours=1) <= newest < history_end
    shift = timedelta(minutes=int(info["shift_minutes"]))
    tpl = templates.database_dsn(servers.write_dsn, template.name)
    assert schema(clone_dsn) == schema(tpl)  # the shift rewrote tables, not their definitions
    tables = {
        r[0] for r in rows(tpl, "SELECT tablename FROM pg_tables WHERE schemaname = 'public'")
    }
    for table, column in sorted(c for c in templates.SHIFTED_COLUMNS if c[0] in tables):
        query = f"SELECT min({column}), max({column}) FROM {table}"
        original, shifted = rows(tpl, query)[0], rows(clone_dsn, query)[0]
        assert (original[0] + shift, original[1] + shift) == shifted


def test_clone_takes_new_ids_after_the_loaded_ones(servers, template):
    dsn = clone(servers.write_dsn, template.name, "test_clone_ids")
    try:
        with psycopg.connect(dsn) as conn:
            customer = conn.execute(
                "INSERT INTO customers (name, email) VALUES ('N', 'n@x') RETURNING id"
            )
            position = conn.execute(
                "INSERT INTO outbox (event_type, payload) VALUES ('X', '{}') RETURNING position"
            )
            assert customer.fetchone()[0] == template.rows["customers"] + 1
            assert position.fetchone()[0] == template.rows["outbox"] + 1
    finally:
        drop_database(servers.write_dsn, "test_clone_ids")


def test_clone_refuses_an_existing_name_and_bad_names(servers, template, clone_dsn):
    with pytest.raises(DatasetError, match="already exists"):
        clone(servers.write_dsn, template.name, "test_dataset_clone")
    with pytest.raises(DatasetError, match="does not exist"):
        clone(servers.write_dsn, "cqrsb_no_such_template", "test_clone_x")
    with pytest.raises(DatasetError, match="not allowed"):
        clone(servers.write_dsn, template.name, "Bad-Name")
    with pytest.raises(DatasetError, match="refusing"):
        drop_database(servers.write_dsn, "postgres")


# --- the event history ----------------------------------------------------------------------------


def outbox(dsn: str) -> list[tuple[str, dict, datetime]]:
    return rows(dsn, "SELECT event_type, payload, occurred_at FROM outbox ORDER BY tx_id, position")


def test_every_payload_is_its_event_to_payload(clone_dsn):
    history = outbox(clone_dsn)
    for event_type, payload, _at in history:
        as_json = json.loads(json.dumps(ev.to_payload(ev.from_payload(event_type, payload))))
        assert as_json == payload
    kinds = [event_type for event_type, _payload, _at in history]
    setup = [k for k in kinds if k in ("CustomerRegistered", "ProductAdded")]
    assert kinds[: len(setup)] == setup  # registrations come first
    times = [at for _type, _payload, at in history]
    assert times == sorted(times)


class Replay:
    """The state the events describe, checking each event against the domain rules as it goes.

    Row versions too: each price or status change carries its row's previous version + 1."""

    def __init__(self) -> None:
        self.customers, self.products, self.orders, self.history = {}, {}, {}, []
        self.versions: dict[tuple[str, int], int] = {}

    def _bump(self, kind: str, row_id: int, version: int) -> None:
        assert version == self.versions[kind, row_id] + 1
        self.versions[kind, row_id] = version

    def apply(self, event: ev.Event, at: datetime) -> None:
        getattr(self, type(event).__name__)(event, at)

    def CustomerRegistered(self, e, at):  # noqa: N802
        self.customers[e.customer_id] = (e.name, e.email, at)

    def ProductAdded(self, e, at):  # noqa: N802
        self.products[e.product_id] = [e.sku, e.name, e.category, e.price_cents, e.stock, "active"]
        self.versions["product", e.product_id] = 1

    def ProductPriceChanged(self, e, at):  # noqa: N802
        assert self.products[e.product_id][3] == e.old_price_cents
        self.products[e.product_id][3] = e.new_price_cents
        self._bump("product", e.product_id, e.version)
        self.history.append((e.product_id, e.old_price_cents, e.new_price_cents, e.reason, at))

    def ProductDiscontinued(self, e, at):  # noqa: N802
        assert self.products[e.product_id][3] == e.price_cents
        self.products[e.product_id][5] = "discontinued"
        self._bump("product", e.product_id, e.version)

    def OrderPlaced(self, e, at):  # noqa: N802
        assert e.customer_id in self.customers and len({ln.product_id for ln in e.lines}) == len(
            e.lines
        )
        for line in e.lines:
            product = self.products[line.product_id]
            assert product[5] == "active" and product[3] == line.unit_price_cents
            assert product[4] >= line.quantity
            product[4] -= line.quantity
        assert e.total_cents == sum(ln.quantity * ln.unit_price_cents for ln in e.lines)
        self.orders[e.order_id] = [e.customer_id, "placed", e.total_cents, at, e.lines]
        self.versions["order", e.order_id] = 1

    def OrderShipped(self, e, at):  # noqa: N802
        self._close(e, "shipped", at)

    def OrderCancelled(self, e, at):  # noqa: N802
        for line in self._close(e, "cancelled", at)[4]:
            self.products[line.product_id][4] += line.quantity

    def _close(self, e, status: str, at: datetime) -> list:
        order = self.orders[e.order_id]
        self._bump("order", e.order_id, e.version)
        assert order[1] == "placed"
        assert timedelta(hours=1) <= at - order[3] <= timedelta(hours=48)
        order[1] = status
        return order


def test_replaying_the_events_reproduces_the_tables(clone_dsn):
    replay = Replay()
    for event_type, payload, at in outbox(clone_dsn):
        replay.apply(ev.from_payload(event_type, payload), at)
    products = rows(
        clone_dsn, "SELECT id, sku, name, category, price_cents, stock, status FROM products"
    )
    assert {p[0]: list(p[1:]) for p in products} == replay.products
    customers = rows(clone_dsn, "SELECT id, name, email, created_at FROM customers")
    assert {c[0]: tuple(c[1:]) for c in customers} == replay.customers
    orders = rows(clone_dsn, "SELECT id, customer_id, status, total_cents, placed_at FROM orders")
    assert {o[0]: list(o[1:]) for o in orders} == {k: v[:4] for k, v in replay.orders.items()}
    lines = rows(
        clone_dsn,
        "SELECT order_id, line_no, product_id, quantity, unit_price_cents FROM order_lines",
    )
    replayed_lines = [
        (oid, ln.line_no, ln.product_id, ln.quantity, ln.unit_price_cents)
        for oid, order in replay.orders.items()
        for ln in order[4]
    ]
    assert sorted(lines) == sorted(replayed_lines)
    history = rows(
        clone_dsn,
        "SELECT product_id, old_price_cents, new_price_cents, reason, changed_at "
        "FROM price_history ORDER BY id",
    )
    assert history == replay.history
    assert any(p[5] == "discontinued" for p in replay.products.values()) and replay.history
    versions = rows(
        clone_dsn,
        "SELECT 'product', id, version FROM products UNION ALL "
        "SELECT 'order', id, version FROM orders",
    )
    assert {(kind, row_id): v for kind, row_id, v in versions} == replay.versions
    assert max(replay.versions.values()) > 2


def test_a_run_database_in_use_is_dropped_only_by_force(servers):
    dsn = templates.create_empty_database(servers.write_dsn, "test_drop_in_use")
    busy = psycopg.connect(dsn, autocommit=True)
    sleeping = threading.Thread(target=lambda: _sleep_until_ended(busy), daemon=True)
    sleeping.start()
    try:
        with pytest.raises(DatasetError, match="while sessions use it"):
            drop_database(servers.write_dsn, "test_drop_in_use")
        assert drop_database(servers.write_dsn, "test_drop_in_use", force=True) is True
        sleeping.join(timeout=10)
        assert not sleeping.is_alive()  # its query was ended with its session
    finally:
        busy.close()
        drop_database(servers.write_dsn, "test_drop_in_use", force=True)


def _sleep_until_ended(conn: psycopg.Connection) -> None:
    try:
        conn.execute("SELECT pg_sleep(60)")
    except psycopg.OperationalError:
        pass
