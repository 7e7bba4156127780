"""What run.json records about the software, the servers, the code and the machine.

Every piece is gathered on its own: one that fails becomes null, with the reason under
`metadata_errors` (dotted key → reason), and never stops the run.
"""

from __future__ import annotations

import importlib.metadata
import os
import platform
import socket
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg
from psycopg import conninfo

from harness.results.run_dir import start_run_json

PACKAGES = {
    "cqrs-bench": "cqrs-bench",
    "sqlalchemy": "SQLAlchemy",
    "psycopg": "psycopg",
    "locust": "locust",
    "pandas": "pandas",
    "pyarrow": "pyarrow",
    "hdrhistogram": "hdrhistogram",
}

# Recorded even when at their defaults, because the measurements depend on them.
RELEVANT_SETTINGS = (
    "shared_buffers",
    "max_connections",
    "track_commit_timestamp",
    "log_lock_waits",
    "deadlock_timeout",
    "plan_cache_mode",
    "synchronous_commit",
    "fsync",
    "wal_level",
    "shared_preload_libraries",
    "work_mem",
    "random_page_cost",
    "effective_cache_size",
    "max_wal_size",
    "checkpoint_timeout",
)

SETTINGS_SQL = """
SELECT name, current_setting(name) AS value, setting, unit, source
FROM pg_settings
WHERE source <> 'default' OR name = ANY(%s)
ORDER BY name
"""

REPO_ROOT = Path(__file__).resolve().parents[2]
SECRET_KEYS = ("password", "sslpassword")


def _reason(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def redact_dsn(dsn: str) -> str:
    """`dsn` without its password (as key=value conninfo); a placeholder if it does not parse."""
    try:
        params = conninfo.conninfo_to_dict(dsn)
    except Exception:  # never echo an unparseable DSN, it may hold a secret
        return "<unparseable DSN>"
    for key in SECRET_KEYS:
        params.pop(key, None)
    return conninfo.make_conninfo(**params)


def package_versions(errors: dict[str, str]) -> dict[str, str | None]:
    versions: dict[str, str | None] = {"python": platform.python_version()}
    for key, dist in PACKAGES.items():
        try:
            versions[key] = importlib.metadata.version(dist)
        except Exception as exc:
            versions[key] = None
            errors[f"versions.{key}"] = _reason(exc)
    return versions


def postgres_info(dsn: str, *, timeout: int = 5) -> dict[str, Any]:
    """Version and settings of the server at `dsn` (raises if it cannot be reached)."""
    with psycopg.connect(
        dsn, autocommit=True, connect_timeout=timeout, application_name="cqrs-bench:metadata"
    ) as conn:
        version = conn.execute("SHOW server_version").fetchone()[0]
        version_num = int(conn.execute("SHOW server_version_num").fetchone()[0])
        rows = conn.execute(SETTINGS_SQL, [list(RELEVANT_SETTINGS)]).fetchall()
    settings = {
        name: {"value": value, "setting": setting, "unit": unit, "source": source}
        for name, value, setting, unit, source in rows
    }
    return {"server_version": version, "server_version_num": version_num, "settings": settings}


def postgres_servers(dsns: dict[str, str | None], errors: dict[str, str]) -> dict[str, Any]:
    servers: dict[str, Any] = {}
    for role, dsn in dsns.items():
        if not dsn:
            servers[role] = None
            errors[f"postgres.{role}"] = "no DSN given"
            continue
        entry: dict[str, Any] = {"dsn": redact_dsn(dsn)}
        try:
            entry.update(postgres_info(dsn))
        except Exception as exc:
            entry.update(server_version=None, server_version_num=None, settings=None)
            errors[f"postgres.{role}"] = _reason(exc)
        servers[role] = entry
    return servers


def _git(repo: Path, *args: str) -> str:
    done = subprocess.run(
        ["git", "-C", str(repo), *args], capture_output=True, text=True, timeout=10, check=False
    )
    if done.returncode != 0:
        raise RuntimeError(done.stderr.strip() or f"git {' '.join(args)} failed")
    return done.stdout.rstrip("\n")


def git_info(repo: Path = REPO_ROOT) -> dict[str, Any]:
    """Commit, branch and dirtiness of the checkout at `repo` (raises when it is not one)."""
    commit = _git(repo, "rev-parse", "HEAD").strip()
    branch = _git(repo, "rev-parse", "--abbrev-ref", "HEAD").strip()
    changed = _git(repo, "status", "--porcelain", "--untracked-files=no").splitlines()
    return {
        "commit": commit,
        "branch": None if branch == "HEAD" else branch,
        "dirty": bool(changed),
        "dirty_files": [line[3:] for line in changed[:100]],  # "XY path"
    }


def _cpu_model() -> str | None:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.lower().startswith(("model name", "hardware", "cpu model")):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def machine_info(errors: dict[str, str]) -> dict[str, Any]:
    import psutil

    pieces: dict[str, Callable[[], Any]] = {
        "hostname": socket.gethostname,
        "platform": platform.platform,
        "os": lambda: platform.system(),
        "kernel": platform.release,
        "cpu_model": _cpu_model,
        "logical_cpus": os.cpu_count,
        "cpu_affinity": lambda: sorted(os.sched_getaffinity(0)),
        "memory_total_bytes": lambda: psutil.virtual_memory().total,
        "load_average": lambda: list(os.getloadavg()),
        "python_executable": lambda: sys.executable,
    }
    machine: dict[str, Any] = {}
    for key, get in pieces.items():
        try:
            machine[key] = get()
        except Exception as exc:
            machine[key] = None
            errors[f"machine.{key}"] = _reason(exc)
    return machine


def gather(
    write_dsn: str | None, read_dsn: str | None = None, *, repo: Path = REPO_ROOT
) -> dict[str, Any]:
    """The run.json keys `versions`, `postgres`, `git`, `machine` and `metadata_errors`.

    `read_dsn` defaults to `write_dsn` (one server for both sides). Never raises for a piece
    that cannot be gathered: it is null, with the reason in `metadata_errors`.
    """
    errors: dict[str, str] = {}
    versions = package_versions(errors)
    servers = postgres_servers({"write": write_dsn, "read": read_dsn or write_dsn}, errors)
    try:
        git = git_info(repo)
    except Exception as exc:
        git = None
        errors["git"] = _reason(exc)
    machine = machine_info(errors)
    return {
        "versions": versions,
        "postgres": servers,
        "git": git,
        "machine": machine,
        "metadata_errors": errors,
    }


def dataset_info(sf: float | None, seed: int | None, template: Any = None) -> dict[str, Any]:
    """run.json's `dataset`: scale factor, seed, the versions that key the dataset template,
    its name, and (given the TemplateInfo from ensure_template) its checksum and row counts."""
    info: dict[str, Any] = {"sf": sf, "seed": seed}
    try:
        from harness.postgres.templates import template_name
        from implementations.write_model import SCHEMA_VERSION
        from workloads.dataset import GENERATOR_VERSION

        info["generator_version"] = GENERATOR_VERSION
        info["write_model_schema_version"] = SCHEMA_VERSION
        if sf is not None and seed is not None:
            info["template"] = template_name(sf, seed)
    except Exception as exc:
        info["error"] = _reason(exc)
    if template is not None:
        info["template"] = getattr(template, "name", info.get("template"))
        info["checksum"] = getattr(template, "checksum", None)
        info["rows"] = dict(getattr(template, "rows", {}) or {})
    return info


def run_metadata(
    run_dir: Path,
    config: dict[str, Any],
    servers: Any,
    *,
    experiment: str | None = None,
    impls: list[str] | None = None,
    dataset: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the run.json of a run that is starting (status `running`, run_dir.start_run_json)
    with everything gathered here; the record written.

    `servers` has `write_dsn` and `read_dsn` (harness.servers.Servers). `experiment` defaults to
    config["experiment"], else the run directory's parent; `impls` to config["impls"]; `dataset`
    to dataset_info(config["sf"], config["seed"]).
    """
    run_dir = Path(run_dir)
    return start_run_json(
        run_dir,
        experiment=experiment or config.get("experiment") or run_dir.parent.name,
        config=config,
        dataset=dataset
        if dataset is not None
        else dataset_info(config.get("sf"), config.get("seed")),
        impls=list(impls if impls is not None else config.get("impls", [])),
        metadata=gather(getattr(servers, "write_dsn", None), getattr(servers, "read_dsn", None)),
    )
