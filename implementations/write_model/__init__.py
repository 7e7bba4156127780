"""The normalized write model every implementation shares: schema and command handlers."""

from importlib.resources import files

SCHEMA_VERSION = 3


def schema_sql() -> str:
    return files(__package__).joinpath("schema.sql").read_text()
