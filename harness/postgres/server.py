"""One embedded PostgreSQL server: initdb, start, stop and inspect it with the machine's binaries.

PostgreSQL refuses to run as root, so when we are root every server process runs as the
`postgres` user, its data directory owned by that user with mode 0700.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass
from pathlib import Path

import psutil

from harness.postgres.binaries import find_bindir, pkglibdir

SUPERUSER = "postgres"

# Settings the measurements depend on (DESIGN section 8), written into postgresql.conf at initdb.
SETTINGS = {
    "listen_addresses": "'127.0.0.1'",
    "max_connections": "200",
    "shared_buffers": "512MB",
    "shared_preload_libraries": "'pg_stat_statements'",
    "pg_stat_statements.track": "all",
    "track_commit_timestamp": "on",
    "track_io_timing": "on",
    "log_lock_waits": "on",
    "deadlock_timeout": "200ms",
    "log_line_prefix": "'%m [%p] %a %u@%d '",
    "max_wal_size": "4GB",
    "checkpoint_timeout": "30min",
    # a streaming standby can be made of any write server (see servers.standby_dsn)
    "wal_level": "replica",
    "max_wal_senders": "10",
    "hot_standby": "on",
}

# Loaded as well when this machine has it (Debian: postgresql-15-pg-wait-sampling): wait events
# sampled inside the server at 100 Hz per backend (the `wait_profile` table); without it the
# harness samples pg_stat_activity (the `waits` table) and records which it used.
WAIT_SAMPLING = "pg_wait_sampling"


def preload_libraries(libdir: Path) -> list[str]:
    """The libraries an embedded server preloads: pg_stat_statements, and pg_wait_sampling
    when its library is installed in `libdir` (the server's pkglibdir), so that a server still
    starts on a machine without it."""
    libraries = ["pg_stat_statements"]
    if (libdir / f"{WAIT_SAMPLING}.so").is_file():
        libraries.append(WAIT_SAMPLING)
    return libraries


def server_settings(libdir: Path) -> dict[str, str]:
    """SETTINGS, with shared_preload_libraries as preload_libraries(libdir) decides."""
    return {**SETTINGS, "shared_preload_libraries": f"'{','.join(preload_libraries(libdir))}'"}


class ServerError(RuntimeError):
    pass


@dataclass(frozen=True)
class ServerStatus:
    role: str
    running: bool
    pid: int | None
    port: int | None
    dsn: str | None
    datadir: Path


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def dsn_for(port: int, dbname: str = "postgres") -> str:
    return f"postgresql://{SUPERUSER}@127.0.0.1:{port}/{dbname}"


def _runs_as_root() -> bool:
    return os.geteuid() == 0


def _os_user() -> dict:
    """subprocess keyword arguments that run a server binary as an OS user PostgreSQL accepts."""
    if not _runs_as_root():
        return {}
    try:
        pwd.getpwnam("postgres")
    except KeyError as e:
        raise ServerError(
            "Running as root, but there is no `postgres` OS user to run PostgreSQL as. "
            "Create one (useradd --system postgres) or run as an ordinary user."
        ) from e
    return {"user": "postgres", "group": "postgres", "extra_groups": []}


def _chown_to_server_user(path: Path) -> None:
    if _runs_as_root():
        shutil.chown(path, "postgres", "postgres")


class EmbeddedServer:
    """A PostgreSQL cluster in `root/` (data/, server.log) that this harness owns."""

    def __init__(self, root: Path, role: str) -> None:
        self.root = root.resolve()
        self.role = role
        self.datadir = self.root / "data"
        self.logfile = self.root / "server.log"

    @property
    def socket_dir(self) -> Path:
        # Unix socket paths are limited to ~100 bytes: keep them short and outside the repo.
        digest = hashlib.sha1(str(self.datadir).encode()).hexdigest()[:10]
        return Path(tempfile.gettempdir()) / f"cqrsb-{digest}"

    def _run(
        self, *args: str, check: bool = True, cpus: set[int] | None = None
    ) -> subprocess.CompletedProcess:
        bindir = find_bindir()
        proc = subprocess.run(
            [str(bindir / args[0]), *args[1:]],
            capture_output=True,
            text=True,
            cwd="/",
            env={**os.environ, "LC_ALL": "C"},
            # The postmaster and every backend inherit the CPU affinity of pg_ctl.
            preexec_fn=(lambda: os.sched_setaffinity(0, cpus)) if cpus else None,
            **_os_user(),
        )
        if check and proc.returncode != 0:
            raise ServerError(
                f"{args[0]} failed for the {self.role} server ({self.datadir}):\n"
                f"{proc.stderr.strip() or proc.stdout.strip()}\nserver log: {self.logfile}"
            )
        return proc

    def _check_reachable(self) -> None:
        if (
            _runs_as_root()
            and subprocess.run(["test", "-w", str(self.root)], **_os_user()).returncode
        ):
            raise ServerError(
                f"The postgres OS user cannot reach {self.root}: a parent directory is not "
                "searchable by other users. Run `chmod o+x` on it, or set CQRS_BENCH_HOME to a "
                "directory the postgres user can reach."
            )

    def initialized(self) -> bool:
        return (self.datadir / "PG_VERSION").is_file()

    def init(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        _chown_to_server_user(self.root)
        self._check_reachable()
        self._run(
            "initdb",
            "-D",
            str(self.datadir),
            "-U",
            SUPERUSER,
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )
        with (self.datadir / "postgresql.conf").open("a") as conf:
            conf.write("\n# cqrs-bench measurement settings\n")
            settings = server_settings(pkglibdir())
            conf.writelines(f"{k} = {v}\n" for k, v in settings.items())

    def init_standby(self, primary_dsn: str) -> None:
        """Make this cluster a physical streaming standby of the server at `primary_dsn`: a base
        backup of it (pg_basebackup, WAL streamed) with `standby.signal` and `primary_conninfo`
        written (-R), so start() brings it up in hot standby, replaying what the primary writes."""
        self.root.mkdir(parents=True, exist_ok=True)
        _chown_to_server_user(self.root)
        self._check_reachable()
        self._run(
            "pg_basebackup",
            "-d",
            primary_dsn,
            "-D",
            str(self.datadir),
            "-R",
            "-X",
            "stream",
            "-c",
            "fast",
            "--no-sync",
        )

    def start(self, port: int | None = None, cpus: set[int] | None = None) -> ServerStatus:
        """Start the server (initdb first if needed) on `port` (default: a free one), its
        processes pinned to `cpus` when given; a running server is left as it is."""
        current = self.status()
        if current.running:
            return current
        if not self.initialized():
            self.init()
        self.socket_dir.mkdir(mode=0o700, exist_ok=True)
        _chown_to_server_user(self.socket_dir)
        port = port or free_port()
        self._run(
            "pg_ctl",
            "start",
            "-w",
            "-t",
            "60",
            "-D",
            str(self.datadir),
            "-l",
            str(self.logfile),
            "-o",
            f"-p {port} -k {self.socket_dir}",
            cpus=cpus,
        )
        status = self.status()
        if not status.running:
            raise ServerError(f"the {self.role} server did not start; see {self.logfile}")
        return status

    def stop(self) -> None:
        if self.status().running:
            self._run("pg_ctl", "stop", "-w", "-t", "60", "-m", "fast", "-D", str(self.datadir))

    def status(self) -> ServerStatus:
        pidfile = self.datadir / "postmaster.pid"
        pid = port = None
        running = False
        if pidfile.is_file():
            lines = pidfile.read_text().splitlines()
            if len(lines) >= 4 and lines[0].strip().isdigit():
                pid, port = int(lines[0]), int(lines[3])
                running = (
                    _alive(pid)
                    and self._run(
                        "pg_ctl", "status", "-D", str(self.datadir), check=False
                    ).returncode
                    == 0
                )
        return ServerStatus(
            role=self.role,
            running=running,
            pid=pid if running else None,
            port=port if running else None,
            dsn=dsn_for(port) if running and port else None,
            datadir=self.datadir,
        )

    def remove(self) -> None:
        self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
        shutil.rmtree(self.socket_dir, ignore_errors=True)


def _alive(pid: int) -> bool:
    """Whether process `pid` runs: a zombie does not (a killed postmaster stays one until its
    parent, often a container's init that never reaps, collects it)."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
    except psutil.AccessDenied:
        return True
