"""Check a run directory against the results schema.

Problems make a run invalid. Warnings do not: a file the schema does not document (something a
newer tool added, a note someone left) and, for an incomplete run, what it lacks.

A *complete* run must have every table and file, with rows for each implementation it lists. An
*incomplete* run (stopped by a failure or an interruption) is valid when run.json says why and
whatever tables it did write are well-formed: missing tables and rows are reported as warnings.
A run still marked *running* is a problem: either it is running now or it was killed before it
could record its end. A run of an older results schema version is checked against the tables and
columns of that version.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from harness.results import schema
from harness.results.run_dir import content_problems
from harness.results.schema import (
    INCOMPLETE_RUN_JSON_KEYS,
    KNOWN_SCHEMA_VERSIONS,
    LOCUST_DIR,
    LOCUST_FILES,
    LOGS_DIR,
    RAW_DIR,
    REPORT_DIR,
    REQUIRED_RUN_JSON_KEYS,
    RUN_JSON,
    SUMMARY_TXT,
    TABLES,
    Table,
    describe_markdown,
)
from implementations import registry

__all__ = ["Report", "check_run", "describe_markdown", "impl_names", "is_run_dir", "validate_run"]


@dataclass
class Report:
    run_dir: Path
    status: str | None = None  # from run.json, when it could be read
    incomplete_reason: str | None = None
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def is_run_dir(path: Path) -> bool:
    """Whether `path` looks like a run directory (a directory holding run.json)."""
    return Path(path).is_dir() and (Path(path) / RUN_JSON).is_file()


def validate_run(run_dir: Path) -> list[str]:
    """The problems of the run at `run_dir`; an empty list means it is valid."""
    return check_run(run_dir).problems


PROJECTOR_TABLES = ("event_lag",)  # recorded by the projector the runner starts


def _external_projector(record: dict[str, Any], impl: str) -> bool:
    """A projector the runner did not start (`run --service-url`) records no lag per commit."""
    details = record.get("impls")
    return isinstance(details, dict) and (details.get(impl) or {}).get("projector") == "external"


def impl_names(record: dict[str, Any]) -> list[str] | None:
    """The implementations run.json lists, in order: `impls` is a list of names, or an object
    keyed by name (per-implementation details); None when it is neither."""
    impls = record.get("impls")
    if isinstance(impls, dict):
        impls = list(impls)
    if isinstance(impls, list) and all(isinstance(i, str) for i in impls):
        return impls
    return None


def _in_run_dir(run_dir: Path, path: str) -> Path:
    """A path run.json names: relative to the run directory, or absolute; an absolute path
    through a directory of the run's name is taken inside this one (the run may have moved)."""
    p = Path(path)
    if not p.is_absolute():
        return run_dir / p
    if not p.exists() and run_dir.name in p.parts:
        tail = p.parts[len(p.parts) - 1 - p.parts[::-1].index(run_dir.name) + 1 :]
        return run_dir.joinpath(*tail)
    return p


def _kind_ok(kind: str, t: pa.DataType) -> bool:
    if kind == "timestamp":
        return pa.types.is_timestamp(t) and t.tz in ("UTC", "+00:00", "Etc/UTC", "Z")
    if kind == "int":
        return pa.types.is_integer(t)
    if kind == "float":
        return pa.types.is_floating(t)
    if kind == "str":
        return pa.types.is_string(t) or pa.types.is_large_string(t) or pa.types.is_string_view(t)
    return pa.types.is_boolean(t)


def _read_run_json(report: Report) -> dict[str, Any] | None:
    path = report.run_dir / RUN_JSON
    if not path.is_file():
        report.problems.append(f"{RUN_JSON} is missing")
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        report.problems.append(f"{RUN_JSON} cannot be read: {exc}")
        return None
    if not isinstance(record, dict):
        report.problems.append(f"{RUN_JSON} is not a JSON object")
        return None
    return record


def _check_run_json(report: Report, record: dict[str, Any]) -> bool:
    """Check run.json's keys; False when its schema version is unknown (nothing else is
    checked then: the files follow a format this code does not know)."""
    version = record.get("schema_version")
    if version not in KNOWN_SCHEMA_VERSIONS or isinstance(version, bool):
        known = ", ".join(map(str, sorted(KNOWN_SCHEMA_VERSIONS)))
        report.problems.append(
            f"{RUN_JSON}: unknown schema_version {version!r} (this code knows {known})"
        )
        return False
    missing = [k for k in REQUIRED_RUN_JSON_KEYS if k not in record]
    if missing:
        report.problems.append(f"{RUN_JSON}: missing keys {missing}")
    status = record.get("status")
    if status not in schema.RUN_STATUSES:
        report.problems.append(
            f"{RUN_JSON}: status {status!r} is not one of {list(schema.RUN_STATUSES)}"
        )
    else:
        report.status = status
    if status == "running":
        report.problems.append(
            f"{RUN_JSON}: status is 'running': the run is still going, or was killed before it "
            "recorded its end"
        )
    if status == "complete" and record.get("finished_at") is None and "finished_at" in record:
        report.problems.append(f"{RUN_JSON}: a complete run needs finished_at")
    if status == "incomplete":
        absent = [k for k in INCOMPLETE_RUN_JSON_KEYS if k not in record]
        if absent:
            report.problems.append(f"{RUN_JSON}: an incomplete run needs keys {absent}")
        reason = record.get("incomplete_reason")
        if "incomplete_reason" in record and not (isinstance(reason, str) and reason.strip()):
            report.problems.append(f"{RUN_JSON}: incomplete_reason is empty")
        report.incomplete_reason = reason if isinstance(reason, str) else None
        log = record.get("failed_log")
        if log is not None and not _in_run_dir(report.run_dir, str(log)).is_file():
            report.problems.append(f"{RUN_JSON}: failed_log {log!r} does not exist")
    impls = impl_names(record)
    if "impls" in record:
        if impls is None:
            report.problems.append(
                f"{RUN_JSON}: impls must be a list of names, or an object keyed by name"
            )
        elif unknown := [i for i in impls if i not in registry.architectures()]:
            report.problems.append(
                f"{RUN_JSON}: unknown impls {unknown} (known: {registry.names()})"
            )
        elif not impls:
            report.problems.append(f"{RUN_JSON}: impls is empty")
    report.problems.extend(_capacity_problems(record))
    if record.get("run_id") is not None and record.get("run_id") != report.run_dir.name:
        report.warnings.append(
            f"{RUN_JSON}: run_id {record['run_id']!r} differs from the directory name "
            f"{report.run_dir.name!r} (was the directory renamed?)"
        )
    if record.get("experiment") is not None and record["experiment"] != report.run_dir.parent.name:
        report.warnings.append(
            f"{RUN_JSON}: experiment {record['experiment']!r} differs from the parent directory "
            f"{report.run_dir.parent.name!r}"
        )
    return True


def _capacity_problems(record: dict[str, Any]) -> list[str]:
    """What is wrong with the implementations' `cpu_capacity` (component → {cores > 0, basis})."""
    details = record.get("impls")
    problems = []
    for impl, info in details.items() if isinstance(details, dict) else ():
        found = (info or {}).get("cpu_capacity") if isinstance(info, dict) else None
        if found is None:
            continue
        entries = found.items() if isinstance(found, dict) else [("", found)]
        for component, entry in entries:
            cores = entry.get("cores") if isinstance(entry, dict) else None
            if (
                isinstance(cores, bool)
                or not isinstance(cores, int | float)
                or not cores > 0
                or not isinstance(entry.get("basis"), str)
            ):
                problems.append(
                    f"{RUN_JSON}: impls.{impl}.cpu_capacity.{component} must be "
                    f"{{cores: a number > 0, basis: text}}, not {entry!r}"
                )
    return problems


def _check_table(
    report: Report, spec: Table, impls: list[str] | None, complete: bool, version: Any
) -> None:
    path = report.run_dir / spec.file_name
    if not path.is_file():
        if complete:
            report.problems.append(f"{spec.file_name} is missing")
        else:
            report.warnings.append(f"{spec.file_name} is missing (the run is not complete)")
        return
    try:
        file_schema = pq.read_schema(path)
    except (OSError, pa.ArrowException) as exc:
        report.problems.append(f"{spec.file_name} cannot be read as Parquet: {exc}")
        return
    problems = []
    names = file_schema.names
    missing = [c for c in spec.column_names if c not in names]
    extra = [c for c in names if c not in spec.column_names]
    if missing:
        problems.append(f"{spec.file_name}: missing columns {missing}")
    if extra:
        problems.append(f"{spec.file_name}: undocumented columns {extra}")
    if len(set(names)) != len(names):
        problems.append(f"{spec.file_name}: duplicate columns")
    for col in spec.columns:
        if col.name in names and len(set(names)) == len(names):
            actual = file_schema.field(col.name).type
            if not _kind_ok(col.kind, actual):
                problems.append(
                    f"{spec.file_name}: column {col.name!r} has type {actual}, expected "
                    f"{col.kind} ({col.arrow_type})"
                )
    meta = file_schema.metadata or {}
    file_version = meta.get(b"cqrs_bench.results_schema_version")
    if file_version is not None and file_version.decode() != str(version):
        problems.append(
            f"{spec.file_name}: written with results schema version {file_version.decode()}, "
            f"run.json says {version}"
        )
    report.problems.extend(problems)
    if problems:
        return  # the contents cannot be checked against a schema they do not follow
    try:
        data = pq.read_table(path)
    except (OSError, pa.ArrowException) as exc:
        report.problems.append(f"{spec.file_name} cannot be read: {exc}")
        return
    report.problems.extend(content_problems(spec, data))
    if impls is None:
        return
    present = set(pc.unique(data.column("impl")).to_pylist()) - {None}
    if stray := sorted(present - set(impls)):
        report.problems.append(
            f"{spec.file_name}: rows for impls {stray} that run.json does not list"
        )
    if stray := sorted(i for i in present if not schema.may_have_rows(spec, i)):
        who = (
            "a projection, a refresher or a standby"
            if spec.lagging_only
            else "a projection or a standby"
        )
        report.problems.append(
            f"{spec.file_name}: rows for {stray}, but only architectures with {who} have them"
        )
    lacking = [i for i in impls if spec.must_have_rows(i) and i not in present]
    if lacking:
        message = f"{spec.file_name}: no rows for {lacking}"
        if complete:
            report.problems.append(message)
        else:
            report.warnings.append(message + " (the run is not complete)")
    if spec.name == "latency":
        measured = data.filter(pc.equal(data.column("phase"), "measure"))
        with_measure = set(pc.unique(measured.column("impl")).to_pylist())
        lacking = [i for i in impls if i in present and i not in with_measure]
        if lacking:
            message = f"{spec.file_name}: no measure-phase rows for {lacking}"
            if complete:
                report.problems.append(message)
            else:
                report.warnings.append(message + " (the run is not complete)")


def _check_other_files(report: Report, impls: list[str] | None, complete: bool) -> None:
    needed = []
    if complete:
        needed.append(SUMMARY_TXT)
        for impl in impls or []:
            needed.extend(f"{LOCUST_DIR}/{name.format(impl=impl)}" for name in LOCUST_FILES)
    missing = [n for n in needed if not (report.run_dir / n).is_file()]
    if missing:
        report.problems.append(f"missing files {missing}")
    documented = {RUN_JSON, SUMMARY_TXT, LOCUST_DIR, LOGS_DIR, RAW_DIR, REPORT_DIR} | {
        t.file_name for t in TABLES
    }
    for entry in sorted(report.run_dir.iterdir()):
        if entry.name.startswith(".") and entry.name.endswith(".tmp"):
            report.warnings.append(f"leftover temporary file {entry.name} (a write was cut short)")
        elif entry.name not in documented:
            report.warnings.append(f"undocumented file {entry.name}")


def check_run(run_dir: Path) -> Report:
    """Every problem and warning of the run at `run_dir` (see the module's docstring)."""
    report = Report(Path(run_dir))
    if not report.run_dir.is_dir():
        report.problems.append(f"{report.run_dir} is not a directory")
        return report
    record = _read_run_json(report)
    impls = None
    version: Any = schema.RESULTS_SCHEMA_VERSION
    if record is not None:
        if not _check_run_json(report, record):
            return report
        version = record["schema_version"]
        impls = impl_names(record)
    # Without a readable run.json the files are still checked, as if the run were incomplete.
    complete = report.status == "complete"
    for spec in schema.tables_at(version):  # a run of an older version, as that version had it
        expected = impls
        if spec.name in PROJECTOR_TABLES and record is not None and impls is not None:
            expected = [i for i in impls if not _external_projector(record, i)]
        if (
            spec.name in schema.COLLECTOR_TABLES
            and record is not None
            and (record.get("config") or {}).get("collectors") is False
        ):
            expected = []
        _check_table(report, spec, expected, complete, version)
    _check_other_files(report, impls, complete)
    return report
