"""The normalized write model every implementation shares: schema and command handlers."""

from importlib.resources import files

SCHEMA_VERSION = 3
# The search path under which customers, products, orders, order_lines and price_history are an
# architecture's write model, whatever keeps it: views of those names in schema write_model when
# the truth is elsewhere (an event store), else these tables. Checks against the write model
# (the reconciliation, the benchmarks' checks) read with it.
TRUTH_SEARCH_PATH = "write_model,public"  # no space: it also goes in libpq options


def schema_sql() -> str:
    return files(__package__).joinpath("schema.sql").read_text()
