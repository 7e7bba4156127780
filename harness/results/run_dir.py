"""Run directories: created atomically, tables written once and checked against the schema."""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from harness.results import schema
from harness.results.schema import RESULTS_SCHEMA_VERSION, RUN_JSON, Table

EXPERIMENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
RUN_ID_FORMAT = "%Y%m%dT%H%M%SZ"


class SchemaMismatch(ValueError):
    """A frame or file does not match the results schema."""


def check_experiment(name: str) -> str:
    """`name` if it can name an experiment directory, else ValueError saying what is allowed."""
    if not isinstance(name, str) or not EXPERIMENT_RE.fullmatch(name):
        raise ValueError(
            f"invalid experiment name {name!r}: use 1-100 letters, digits, '-', '_' or '.', "
            "starting with a letter or digit"
        )
    return name


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(ts: datetime) -> str:
    """ISO 8601 in UTC, e.g. 2025-01-31T12:00:00.123456+00:00."""
    return ts.astimezone(UTC).isoformat()


def create_run_dir(root: Path, experiment: str, *, now: datetime | None = None) -> Path:
    """Create and return `root/<experiment>/<run-id>/`, a directory no other run shares.

    run-id is the UTC time `YYYYmmddTHHMMSSZ`; when a directory of that name exists (another run
    started in the same second), `-2`, `-3`, ... is appended. Each candidate is claimed with an
    atomic mkdir that fails if it exists, so concurrent runs never share a directory.
    """
    check_experiment(experiment)
    parent = Path(root) / experiment
    parent.mkdir(parents=True, exist_ok=True)
    base = (now or utc_now()).astimezone(UTC).strftime(RUN_ID_FORMAT)
    for n in range(1, 10_000):
        candidate = parent / (base if n == 1 else f"{base}-{n}")
        try:
            candidate.mkdir(exist_ok=False)
        except FileExistsError:
            continue
        return candidate
    raise RuntimeError(f"could not find a free run directory name under {parent} for {base}")


# ---------------------------------------------------------------------------------------------
# Tables


def empty_frame(table: str | Table) -> pd.DataFrame:
    """An empty DataFrame with the table's columns and dtypes (accepted by write_table)."""
    spec = schema.table(table)
    dtypes = {
        "timestamp": lambda c: "datetime64[us, UTC]",
        "int": lambda c: "Int64" if c.nullable else "int64",
        "float": lambda c: "float64",
        "str": lambda c: "str",
        "bool": lambda c: "boolean" if c.nullable else "bool",
    }
    return pd.DataFrame({c.name: pd.Series([], dtype=dtypes[c.kind](c)) for c in spec.columns})


def _dtype_problem(col: schema.Column, series: pd.Series) -> str | None:
    """Why `series` cannot hold column `col`, or None."""
    dtype = series.dtype
    api = pd.api.types
    if api.is_object_dtype(dtype) and api.infer_dtype(series, skipna=True) == "empty":
        return None  # no values at all (e.g. a frame built from no rows): nothing to mistype
    if col.kind == "timestamp":
        if not isinstance(dtype, pd.DatetimeTZDtype):
            if api.is_datetime64_dtype(dtype):
                return f"dtype {dtype} is timezone-naive; use UTC-aware timestamps"
            return f"dtype {dtype}, expected a UTC-aware datetime64"
        return None
    if col.kind == "int":
        if api.is_bool_dtype(dtype) or not api.is_integer_dtype(dtype):
            hint = " (nullable integers: use dtype 'Int64')" if api.is_float_dtype(dtype) else ""
            return f"dtype {dtype}, expected an integer dtype{hint}"
        return None
    if col.kind == "float":
        if api.is_bool_dtype(dtype) or not (
            api.is_float_dtype(dtype) or api.is_integer_dtype(dtype)
        ):
            return f"dtype {dtype}, expected a float dtype"
        return None
    if col.kind == "bool":
        if api.is_bool_dtype(dtype):
            return None
        if api.is_object_dtype(dtype) and api.infer_dtype(series, skipna=True) == "boolean":
            return None
        return f"dtype {dtype}, expected bool"
    # str
    if isinstance(dtype, pd.StringDtype):
        return None
    if api.is_object_dtype(dtype) and api.infer_dtype(series, skipna=True) == "string":
        return None
    return f"dtype {dtype}, expected strings"


def _to_arrow(col: schema.Column, series: pd.Series) -> pa.Array:
    if isinstance(series.dtype, pd.DatetimeTZDtype):
        series = series.dt.tz_convert("UTC").dt.as_unit("us")  # sub-µs digits are dropped
    return pa.array(series, type=col.arrow_type, from_pandas=True)


def content_problems(spec: Table, data: pa.Table) -> list[str]:
    """Values that break the schema: nulls where not allowed, values outside the allowed set,
    negative values where only ≥ 0 makes sense. (NaN counts as null.)"""
    import pyarrow.compute as pc

    problems = []
    for col in spec.columns:
        if col.name not in data.column_names:
            continue
        values = data.column(col.name)
        if col.kind == "float":
            values = pc.if_else(pc.is_nan(values), None, values)
        nulls = values.null_count
        if nulls and not col.nullable:
            problems.append(f"{spec.file_name}: column {col.name!r} has {nulls} null/NaN values")
        if col.values and len(values):
            bad = sorted(set(pc.unique(values).to_pylist()) - {None} - set(col.values))
            if bad:
                problems.append(
                    f"{spec.file_name}: column {col.name!r} has values {bad[:5]} outside "
                    f"{list(col.values)}"
                )
        if col.non_negative and len(values) and values.null_count < len(values):
            lowest = pc.min(values).as_py()
            if lowest is not None and lowest < 0:
                problems.append(
                    f"{spec.file_name}: column {col.name!r} has negative values (min {lowest})"
                )
    return problems


def frame_to_arrow(table: str | Table, df: pd.DataFrame) -> pa.Table:
    """`df` as an Arrow table with the schema's exact types; SchemaMismatch naming the table
    and every column at fault."""
    spec = schema.table(table)
    problems = []
    missing = [c for c in spec.column_names if c not in df.columns]
    extra = [str(c) for c in df.columns if c not in spec.column_names]
    if missing:
        problems.append(f"missing columns {missing}")
    if extra:
        problems.append(f"undocumented columns {extra} (add them to harness/results/schema.py)")
    if df.columns.duplicated().any():
        problems.append(f"duplicate columns {sorted(set(df.columns[df.columns.duplicated()]))}")
    if not problems:
        for col in spec.columns:
            if why := _dtype_problem(col, df[col.name]):
                problems.append(f"column {col.name!r}: {why}")
    if problems:
        raise SchemaMismatch(f"{spec.file_name}: " + "; ".join(problems))
    arrays = []
    for col in spec.columns:
        try:
            arrays.append(_to_arrow(col, df[col.name]))
        except (pa.ArrowInvalid, pa.ArrowTypeError, TypeError, ValueError) as exc:
            raise SchemaMismatch(f"{spec.file_name}: column {col.name!r}: {exc}") from exc
    data = pa.Table.from_arrays(arrays, schema=spec.arrow_schema().with_metadata(None))
    if problems := content_problems(spec, data):
        raise SchemaMismatch("; ".join(problems))
    return data.replace_schema_metadata(spec.arrow_schema().metadata)


def write_table(run_dir: Path, table: str | Table, df: pd.DataFrame) -> Path:
    """Write `df` as `run_dir/<table>.parquet` after checking it against the schema.

    Refuses (FileExistsError) when the file exists: each table is written once per run, with the
    rows of every implementation. The file appears complete or not at all.
    """
    spec = schema.table(table)
    run_dir = Path(run_dir)
    target = run_dir / spec.file_name
    if target.exists():
        raise FileExistsError(
            f"{target} exists; results are never overwritten (write each table once per run)"
        )
    data = frame_to_arrow(spec, df)
    fd, tmp = tempfile.mkstemp(prefix=f".{spec.name}.", suffix=".tmp", dir=run_dir)
    os.close(fd)
    try:
        pq.write_table(data, tmp)
        try:
            os.link(tmp, target)  # atomic, and fails if the target exists
        except FileExistsError:
            raise FileExistsError(
                f"{target} exists; results are never overwritten (write each table once per run)"
            ) from None
        except OSError:  # a filesystem without hard links: check, then rename
            if target.exists():
                raise FileExistsError(f"{target} exists; results are never overwritten") from None
            os.replace(tmp, target)
            return target
    finally:
        Path(tmp).unlink(missing_ok=True)
    return target


# ---------------------------------------------------------------------------------------------
# run.json


def _jsonable(value: Any) -> Any:
    """`value` as plain JSON data: datetimes as ISO 8601, paths as text, sets sorted, numpy
    scalars as Python numbers, NaN and infinities as null."""
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, set | frozenset):
        return [_jsonable(v) for v in sorted(value, key=str)]
    if isinstance(value, datetime):
        return iso(value)
    if isinstance(value, Path):
        return str(value)
    if hasattr(value, "item") and not isinstance(value, str | bytes):  # numpy scalars
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if value is None or isinstance(value, str | int | float | bool):
        return value
    raise TypeError(f"run.json: cannot store {type(value).__name__} {value!r}")


def _atomic_write_text(path: Path, text: str) -> None:
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def write_run_json(run_dir: Path, data: dict[str, Any]) -> Path:
    """Write run.json atomically (temporary file, then rename). `schema_version` and `run_id`
    default to the current version and the directory's name."""
    run_dir = Path(run_dir)
    record = {"schema_version": RESULTS_SCHEMA_VERSION, "run_id": run_dir.name, **data}
    if record.get("status") not in schema.RUN_STATUSES:
        raise ValueError(
            f"run.json status must be one of {', '.join(schema.RUN_STATUSES)}, "
            f"not {record.get('status')!r}"
        )
    text = json.dumps(_jsonable(record), indent=2, allow_nan=False) + "\n"
    path = run_dir / RUN_JSON
    _atomic_write_text(path, text)
    return path


def read_run_json(run_dir: Path) -> dict[str, Any]:
    return json.loads((Path(run_dir) / RUN_JSON).read_text(encoding="utf-8"))


def update_run_json(
    run_dir: Path, changes: Mapping[str, Any] | None = None, /, **more: Any
) -> dict[str, Any]:
    """Merge `changes` (a mapping, keywords, or both) into run.json's top-level keys and write it
    atomically; the new record."""
    record = {**read_run_json(run_dir), **(changes or {}), **more}
    write_run_json(run_dir, record)
    return record


def start_run_json(
    run_dir: Path,
    *,
    experiment: str,
    config: dict[str, Any],
    dataset: dict[str, Any],
    impls: list[str],
    metadata: dict[str, Any],
    started_at: datetime | None = None,
) -> dict[str, Any]:
    """Write run.json at the start of a run (status `running`); `metadata` is what
    `harness.results.metadata.gather` returned. The record written."""
    record = {
        "schema_version": RESULTS_SCHEMA_VERSION,
        "run_id": Path(run_dir).name,
        "experiment": check_experiment(experiment),
        "status": "running",
        "started_at": iso(started_at or utc_now()),
        "finished_at": None,
        "config": config,
        "dataset": dataset,
        "impls": list(impls),
        **metadata,
    }
    write_run_json(run_dir, record)
    return record


def finish_run_json(
    run_dir: Path,
    status: str,
    *,
    incomplete_reason: str | None = None,
    failed_component: str | None = None,
    failed_log: str | Path | None = None,
    finished_at: datetime | None = None,
) -> dict[str, Any]:
    """Record the end of the run: status `complete`, or `incomplete` with a reason (and the
    failed component and its log, relative to the run directory, when one failed)."""
    if status == "complete":
        if incomplete_reason or failed_component or failed_log:
            raise ValueError("a complete run has no incomplete_reason/failed_component/failed_log")
        extra: dict[str, Any] = {}
    elif status == "incomplete":
        if not incomplete_reason:
            raise ValueError("an incomplete run needs incomplete_reason")
        if failed_log is not None:
            log = Path(failed_log)
            if log.is_absolute() and log.is_relative_to(Path(run_dir).resolve()):
                log = log.relative_to(Path(run_dir).resolve())
            failed_log = log.as_posix()
        extra = {
            "incomplete_reason": incomplete_reason,
            "failed_component": failed_component,
            "failed_log": failed_log,
        }
    else:
        raise ValueError(f"finish status must be complete or incomplete, not {status!r}")
    return update_run_json(
        run_dir, status=status, finished_at=iso(finished_at or utc_now()), **extra
    )
