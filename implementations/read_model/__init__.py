"""The read models both CQRS variants share: schema, projection (apply) and queries."""

from importlib.resources import files

import psycopg

TABLES = (
    "rm_customers",
    "rm_products",
    "rm_orders",
    "rm_order_lines",
    "rm_category_sales_minute",
    "rm_product_sales_minute",
    "rm_revenue_minute",
)
# (table, column) holding domain time (moved with the history when a dataset is cloned; not the
# checkpoint's, which records when the projection ran)
TIME_COLUMNS = (
    ("rm_customers", "last_order_at"),
    ("rm_orders", "placed_at"),
    ("rm_category_sales_minute", "minute"),
    ("rm_product_sales_minute", "minute"),
    ("rm_revenue_minute", "minute"),
)


def schema_sql() -> str:
    return files(__package__).joinpath("schema.sql").read_text()


def truncate(conn: psycopg.Connection) -> None:
    """Empty every read model (in the caller's transaction), for a rebuild."""
    conn.execute(f"TRUNCATE {', '.join(TABLES)}")
