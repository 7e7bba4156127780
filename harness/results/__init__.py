"""The results layer: the results format (schema), run directories, run metadata, validation.

from harness.results import create_run_dir, write_table, validate_run
"""

from harness.results.run_dir import (
    SchemaMismatch,
    check_experiment,
    create_run_dir,
    empty_frame,
    finish_run_json,
    read_run_json,
    start_run_json,
    update_run_json,
    write_run_json,
    write_table,
)
from harness.results.schema import RESULTS_SCHEMA_VERSION, TABLES, describe_markdown, table
from harness.results.validate import Report, check_run, is_run_dir, validate_run

__all__ = [
    "RESULTS_SCHEMA_VERSION",
    "TABLES",
    "Report",
    "SchemaMismatch",
    "check_experiment",
    "check_run",
    "create_run_dir",
    "describe_markdown",
    "empty_frame",
    "finish_run_json",
    "is_run_dir",
    "read_run_json",
    "start_run_json",
    "table",
    "update_run_json",
    "validate_run",
    "write_run_json",
    "write_table",
]
