"""Find the PostgreSQL server binaries installed on this machine."""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from pathlib import Path

REQUIRED = ("initdb", "pg_ctl", "postgres")

# Where distribution packages put versioned server binaries (Debian/Ubuntu, RHEL, Homebrew).
VERSIONED_GLOBS = (
    "/usr/lib/postgresql/*/bin",
    "/usr/pgsql-*/bin",
    "/opt/homebrew/opt/postgresql@*/bin",
    "/usr/local/opt/postgresql@*/bin",
)


class PostgresNotFound(RuntimeError):
    def __init__(self, looked_in: list[str]) -> None:
        super().__init__(
            "No PostgreSQL server binaries (initdb, pg_ctl, postgres) found; looked in: "
            + ", ".join(looked_in)
            + ".\nInstall a PostgreSQL server (Debian/Ubuntu: `apt-get install postgresql`; "
            "Fedora: `dnf install postgresql-server`; macOS: `brew install postgresql@16`), "
            "set CQRS_BENCH_PG_BINDIR to its bin directory, or use existing servers with "
            "--write-dsn/--read-dsn (or CQRS_BENCH_WRITE_DSN/CQRS_BENCH_READ_DSN)."
        )


def _complete(bindir: Path) -> bool:
    return all((bindir / name).is_file() for name in REQUIRED)


def _version_key(path: str) -> tuple[int, ...]:
    return tuple(int(n) for n in re.findall(r"\d+", path)) or (0,)


def candidate_dirs() -> list[Path]:
    found: list[Path] = []
    if env := os.environ.get("CQRS_BENCH_PG_BINDIR"):
        found.append(Path(env))
    if pg_config := shutil.which("pg_config"):
        out = subprocess.run([pg_config, "--bindir"], capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip():
            found.append(Path(out.stdout.strip()))
    if initdb := shutil.which("initdb"):
        found.append(Path(initdb).resolve().parent)
    for pattern in VERSIONED_GLOBS:
        found.extend(Path(p) for p in sorted(glob.glob(pattern), key=_version_key, reverse=True))
    return found


def find_bindir() -> Path:
    """The first directory holding initdb, pg_ctl and postgres, or PostgresNotFound."""
    if (env := os.environ.get("CQRS_BENCH_PG_BINDIR")) and not _complete(Path(env)):
        raise PostgresNotFound([f"CQRS_BENCH_PG_BINDIR={env} (it lacks {', '.join(REQUIRED)})"])
    candidates = candidate_dirs()
    for bindir in candidates:
        if _complete(bindir):
            return bindir
    looked = [str(c) for c in candidates] or ["pg_config --bindir", "PATH", *VERSIONED_GLOBS]
    raise PostgresNotFound(looked)


def pkglibdir(bindir: Path | None = None) -> Path:
    """Where the server at `bindir` (default: find_bindir()) loads extension libraries from:
    `pg_config --pkglibdir` of the same installation, else the `lib` directory beside `bindir`
    (the Debian layout, /usr/lib/postgresql/N/{bin,lib})."""
    bindir = bindir or find_bindir()
    pg_config = bindir / "pg_config"
    if pg_config.is_file():
        out = subprocess.run([str(pg_config), "--pkglibdir"], capture_output=True, text=True)
        if out.returncode == 0 and out.stdout.strip():
            return Path(out.stdout.strip())
    return bindir.parent / "lib"
