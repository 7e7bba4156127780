"""What an architecture stores: the size of the run's database on each server and of each of its
tables (with indexes and TOAST), read once the load has stopped and the projection caught up."""

from __future__ import annotations

import pandas as pd
import psycopg

SIZES = """
    SELECT '' AS relation, pg_database_size(current_database())
    UNION ALL
    SELECT c.relname, pg_total_relation_size(c.oid)
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p', 'm') AND n.nspname = 'public'
"""
COLUMNS = ["server", "database", "relation", "bytes"]


def sizes(dsn: str, server: str) -> pd.DataFrame:
    """One row for the whole database (relation "") and one per table of the public schema."""
    with psycopg.connect(dsn, autocommit=True, application_name="cqrs-bench:collector") as conn:
        database = conn.info.dbname
        rows = conn.execute(SIZES).fetchall()
    frame = pd.DataFrame(
        [(server, database, rel, int(size)) for rel, size in rows], columns=COLUMNS
    )
    return frame.astype({"server": str, "database": str, "relation": str, "bytes": "int64"})
