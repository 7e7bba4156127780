"""The read models both CQRS variants share: schema, projection (apply) and queries."""

from importlib.resources import files

import psycopg

TABLES = (
    "rm_customers", "rm_products", "rm_orders", "rm_order_lines", "rm_category_sales_minute",
    "rm_product_sales_minute", "rm_revenue_minute",
)  # fmt: skip


def schema_sql() -> str:
    return files(__package__).joinpath("schema.sql").read_text()


def truncate(conn: psycopg.Connection) -> None:
    """Empty every read model (in the caller's transaction), for a rebuild."""
    conn.execute(f"TRUNCATE {', '.join(TABLES)}")
