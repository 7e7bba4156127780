"""After the load: do the read models hold what the write model says they should?

Every read-model row is recomputed from the write tables with SQL on the write database (the
projector's rules, implementations/read_model/apply.py) and compared with the read database's
rows, domain columns only (bookkeeping such as checkpoints or row versions is left out). Each side
is hashed on its own server per bucket of keys (count and sum of row hashes); only the buckets
whose digests differ are fetched and compared row by row, so read models that agree cost a scan
of each side and move a few kilobytes. Aggregate rows whose every figure is 0 (their orders were
all cancelled) answer every query as an absent row would, and count as absent. Read-only.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from decimal import Decimal

import psycopg

from harness.runner.verify import Check
from implementations.write_model import TRUTH_SEARCH_PATH

BUCKETS = 1024  # digests per table: a differing bucket is fetched whole
NOT_CANCELLED = "o.status <> 'cancelled'"
PER_ORDER_LINE = f"""
    FROM orders o JOIN order_lines l ON l.order_id = o.id JOIN products p ON p.id = l.product_id
    WHERE {NOT_CANCELLED}"""


@dataclass(frozen=True)
class ReadModel:
    table: str
    keys: tuple[str, ...]
    columns: tuple[str, ...]  # the domain columns after the keys
    expected: str  # the rows recomputed from the write model, keys then columns, in that order
    figures: tuple[str, ...] = ()  # an aggregate's figures: a row with all of them 0 is absent

    @property
    def actual(self) -> str:
        zero = " AND ".join(f"{f} = 0" for f in self.figures)
        where = f" WHERE NOT ({zero})" if zero else ""
        return f"SELECT {', '.join(self.keys + self.columns)} FROM {self.table}{where}"

    def hashed(self, rows: str) -> str:
        """`rows` (keys, then columns) named, each with its key's bucket and its own hash."""
        key = ", ".join(f"r.{k}" for k in self.keys)
        return (
            f"SELECT hashtextextended(ROW({key})::text, 0) & {BUCKETS - 1} AS bucket, "
            f"hashtextextended(r::text, 0) AS hash, r.* "
            f"FROM ({rows}) AS r ({', '.join(self.keys + self.columns)})"
        )

    def text(self, names: tuple[str, ...], values: tuple | None) -> str:
        return (
            "absent"
            if values is None
            else ", ".join(f"{n}={v}" for n, v in zip(names, values, strict=True))
        )


READ_MODELS = (
    ReadModel(
        "rm_customers",
        ("customer_id",),
        ("name", "order_count", "total_spent_cents", "last_order_at"),
        f"""
        SELECT c.id, c.name, count(o.id)::bigint, coalesce(sum(o.total_cents), 0)::bigint,
               max(o.placed_at)
        FROM customers c LEFT JOIN orders o ON o.customer_id = c.id AND {NOT_CANCELLED}
        GROUP BY c.id, c.name""",  # a view of customers (schema write_model) has no key
    ),
    ReadModel(
        "rm_products",
        ("product_id",),
        ("sku", "name", "category", "price_cents", "active", "units_sold"),
        f"""
        SELECT p.id, p.sku, p.name, p.category, p.price_cents, p.status = 'active',
               coalesce(s.units, 0)::bigint
        FROM products p LEFT JOIN (
            SELECT l.product_id, sum(l.quantity) AS units
            FROM orders o JOIN order_lines l ON l.order_id = o.id WHERE {NOT_CANCELLED}
            GROUP BY l.product_id) s ON s.product_id = p.id""",
    ),
    ReadModel(
        "rm_orders",
        ("order_id",),
        ("customer_id", "customer_name", "status", "total_cents", "item_count", "placed_at"),
        """
        SELECT o.id, o.customer_id, c.name, o.status, o.total_cents, l.items::integer, o.placed_at
        FROM orders o JOIN customers c ON c.id = o.customer_id
        JOIN (SELECT order_id, sum(quantity) AS items FROM order_lines GROUP BY order_id) l
          ON l.order_id = o.id""",
    ),
    ReadModel(
        "rm_order_lines",
        ("order_id", "line_no"),
        ("product_id", "sku", "product_name", "category", "quantity", "unit_price_cents"),
        """
        SELECT l.order_id, l.line_no, l.product_id, p.sku, p.name, p.category, l.quantity,
               l.unit_price_cents
        FROM order_lines l JOIN products p ON p.id = l.product_id""",
    ),
    ReadModel(
        "rm_category_sales_minute",
        ("category", "minute"),
        ("orders", "units", "revenue_cents"),
        f"""
        SELECT category, minute, count(*)::bigint, sum(units)::bigint, sum(amount)::bigint
        FROM (SELECT p.category, date_trunc('minute', o.placed_at) AS minute,
                     sum(l.quantity) AS units, sum(l.quantity * l.unit_price_cents) AS amount
              {PER_ORDER_LINE}
              GROUP BY p.category, minute, o.id) per_order
        GROUP BY category, minute""",
        ("orders", "units", "revenue_cents"),
    ),
    ReadModel(
        "rm_product_sales_minute",
        ("product_id", "minute"),
        ("units", "revenue_cents"),
        f"""
        SELECT l.product_id, date_trunc('minute', o.placed_at) AS minute,
               sum(l.quantity)::bigint, sum(l.quantity * l.unit_price_cents)::bigint
        {PER_ORDER_LINE}
        GROUP BY l.product_id, minute""",
        ("units", "revenue_cents"),
    ),
    ReadModel(
        "rm_revenue_minute",
        ("minute",),
        ("orders", "revenue_cents"),
        f"""
        SELECT date_trunc('minute', o.placed_at), count(*)::bigint, sum(o.total_cents)::bigint
        FROM orders o WHERE {NOT_CANCELLED}
        GROUP BY 1""",
        ("orders", "revenue_cents"),
    ),
)


def _connect(dsn: str) -> psycopg.Connection:
    conn = psycopg.connect(dsn, autocommit=True, application_name="cqrs-bench:reconcile")
    conn.execute("SET default_transaction_read_only = on")
    conn.execute("SET TimeZone = 'UTC'")  # timestamps print alike on both servers
    conn.execute(f"SET search_path = {TRUTH_SEARCH_PATH}")  # views of an event store first
    return conn


def reconcile(write_dsn: str, read_dsn: str) -> list[Check]:
    """Every read model (in the database at `read_dsn`) against its rows recomputed from the
    write model at `write_dsn`: one check per table, phase `after`."""
    with (
        _connect(write_dsn) as write,
        _connect(read_dsn) as read,
        ThreadPoolExecutor(2, thread_name_prefix="reconcile") as pool,
    ):
        return [_compare(model, write, read, pool) for model in READ_MODELS]


def _digests(conn: psycopg.Connection, hashed: str) -> dict[int, tuple[int, Decimal]]:
    """Bucket -> (rows, sum of their hashes)."""
    query = f"SELECT bucket, count(*), sum(hash) FROM ({hashed}) h GROUP BY bucket"
    return {bucket: (rows, total) for bucket, rows, total in conn.execute(query)}


def _rows(
    conn: psycopg.Connection, hashed: str, buckets: list[int], keys: int
) -> dict[tuple, tuple]:
    """Key -> the other columns, of the rows in `buckets`."""
    found = conn.execute(f"SELECT * FROM ({hashed}) h WHERE bucket = ANY(%s)", (buckets,))
    return {row[2 : 2 + keys]: row[2 + keys :] for row in found}


def _compare(
    model: ReadModel, write: psycopg.Connection, read: psycopg.Connection, pool: ThreadPoolExecutor
) -> Check:
    """The write side's expected rows against the read side's, both asked at once."""
    queries = model.hashed(model.expected), model.hashed(model.actual)
    want, got = pool.map(_digests, (write, read), queries)
    rows = sum(n for n, _ in want.values())
    buckets = sorted(b for b in want.keys() | got.keys() if want.get(b) != got.get(b))
    if buckets:
        n = len(model.keys)
        want_rows, got_rows = pool.map(_rows, (write, read), queries, (buckets, buckets), (n, n))
        differ = sorted(
            k for k in want_rows.keys() | got_rows.keys() if want_rows.get(k) != got_rows.get(k)
        )
        if differ:
            first = differ[0]
            return Check(
                model.table,
                False,
                phase="after",
                detail=(
                    f"{rows} rows expected, {sum(n for n, _ in got.values())} found, {len(differ)} "
                    f"differ; first ({model.text(model.keys, first)}): expected "
                    f"{model.text(model.columns, want_rows.get(first))}, got "
                    f"{model.text(model.columns, got_rows.get(first))}"
                ),
            )
    return Check(model.table, True, f"{rows} rows agree", phase="after")
