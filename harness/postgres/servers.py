"""Which PostgreSQL servers a command uses: given DSNs, the `db up` pair, or a throwaway pair.

Order of preference (DESIGN section 8):
1. `--write-dsn` / `--read-dsn` or CQRS_BENCH_WRITE_DSN / CQRS_BENCH_READ_DSN: existing servers;
   nothing is created on them beyond what the command was asked to do.
2. The write and read servers started by `cqrs-bench db up`, while they run.
3. Otherwise a pair started for this command alone and removed when it ends, also on Ctrl-C or error.

A third server, a streaming-replication hot standby of the write server, is started only when an
architecture that reads from one is used (`standby_dsn`): from a base backup of the embedded write
server, beside it (and removed with it), or given (`--replica-dsn` / CQRS_BENCH_REPLICA_DSN).
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from harness.postgres.server import EmbeddedServer, _alive

ROLES = ("write", "read")
STANDBY = "standby"  # the role of the write server's streaming standby (started on demand)
WRITE_DSN_ENV = "CQRS_BENCH_WRITE_DSN"
READ_DSN_ENV = "CQRS_BENCH_READ_DSN"
REPLICA_DSN_ENV = "CQRS_BENCH_REPLICA_DSN"


@dataclass(frozen=True)
class Servers:
    write_dsn: str
    read_dsn: str
    origin: str  # "given" | "db-up" | "ephemeral"
    replica_dsn: str | None = None  # a given standby of the write server
    root: Path | None = None  # where the embedded servers live (their standby goes there too)


_standby_lock = threading.Lock()


def standby_server(servers: Servers) -> EmbeddedServer | None:
    """The embedded standby of these servers' write server (whether started or not); None when
    the servers are given."""
    return EmbeddedServer(servers.root / STANDBY, STANDBY) if servers.root else None


def standby_dsn(servers: Servers) -> str:
    """The DSN (database postgres) of a streaming hot standby of the write server: the given
    one, else the embedded standby, made from a base backup of the write server and started on
    first use (it costs a base backup: only architectures that read from one ask for it)."""
    if servers.replica_dsn:
        return servers.replica_dsn
    server = standby_server(servers)
    if server is None:
        raise ValueError(
            "this architecture reads from a standby of the write server: give one with "
            f"--replica-dsn or {REPLICA_DSN_ENV} (a hot standby streaming from --write-dsn)"
        )
    with _standby_lock:
        status = server.status()
        if not status.running:
            if not server.initialized():
                server.init_standby(servers.write_dsn)
            status = server.start(cpus=role_cpus("write"))
    return status.dsn


def work_dir() -> Path:
    """The git-ignored directory holding server data: CQRS_BENCH_HOME, else <checkout>/.work."""
    if env := os.environ.get("CQRS_BENCH_HOME"):
        return Path(env).resolve()
    checkout = Path(__file__).resolve().parents[2]
    if (checkout / "pyproject.toml").is_file():
        return checkout / ".work"
    return Path.cwd() / ".cqrs-bench"


def persistent_servers() -> dict[str, EmbeddedServer]:
    """The pair that `db up` starts and `db down` stops."""
    return {role: EmbeddedServer(work_dir() / "servers" / role, role) for role in ROLES}


def persistent_standby() -> EmbeddedServer:
    """The standby of the `db up` write server (made when an architecture first reads from it);
    `db down` stops it too."""
    return EmbeddedServer(work_dir() / "servers" / STANDBY, STANDBY)


def _ephemeral_root(pid: int) -> Path:
    return work_dir() / "servers" / f"run-{pid}"


def sweep_orphans() -> list[Path]:
    """Stop and remove throwaway servers whose owning command died without cleaning up."""
    removed = []
    base = work_dir() / "servers"
    for root in sorted(base.glob("run-*")) if base.is_dir() else []:
        owner = root.name.removeprefix("run-")
        if owner.isdigit() and int(owner) != os.getpid() and not _alive(int(owner)):
            for role in (*ROLES, STANDBY):
                EmbeddedServer(root / role, role).remove()
            shutil.rmtree(root, ignore_errors=True)
            removed.append(root)
    return removed


def parse_cpus(text: str | None) -> set[int] | None:
    """ "0", "0,2" or "0-1" to a set of CPU numbers this process may use; None for no pinning."""
    if not text:
        return None
    cpus: set[int] = set()
    try:
        for part in text.split(","):
            low, _, high = part.strip().partition("-")
            cpus.update(range(int(low), int(high or low) + 1))
    except ValueError:
        raise ValueError(f"not a CPU list: {text!r} (expected e.g. 0, 0,2 or 0-1)") from None
    if not cpus or not cpus <= os.sched_getaffinity(0):
        raise ValueError(
            f"CPUs {text!r} are not all available here: {sorted(os.sched_getaffinity(0))}"
        )
    return cpus


def role_cpus(role: str) -> set[int] | None:
    """CPUs to pin an embedded server to (CQRS_BENCH_WRITE_CPUS / CQRS_BENCH_READ_CPUS)."""
    return parse_cpus(os.environ.get(f"CQRS_BENCH_{role.upper()}_CPUS"))


def given_replica(replica_dsn: str | None = None) -> str | None:
    return replica_dsn or os.environ.get(REPLICA_DSN_ENV) or None


def given_dsns(write_dsn: str | None, read_dsn: str | None) -> tuple[str, str] | None:
    write_dsn = write_dsn or os.environ.get(WRITE_DSN_ENV) or None
    read_dsn = read_dsn or os.environ.get(READ_DSN_ENV) or None
    if not write_dsn and not read_dsn:
        return None
    if not write_dsn:
        raise ValueError(
            f"a read DSN was given without a write DSN (--write-dsn or {WRITE_DSN_ENV})"
        )
    return write_dsn, read_dsn or write_dsn


def lasting_servers(
    write_dsn: str | None = None, read_dsn: str | None = None, replica_dsn: str | None = None
) -> Servers | None:
    """The servers a command would use that outlive it (given, else a running `db up` pair),
    found without starting anything; None when it would start a throwaway pair."""
    if given := given_dsns(write_dsn, read_dsn):
        return Servers(*given, origin="given", replica_dsn=given_replica(replica_dsn))
    running = {role: s.status() for role, s in persistent_servers().items()}
    if all(st.running for st in running.values()):
        return Servers(
            running["write"].dsn,
            running["read"].dsn,
            origin="db-up",
            replica_dsn=given_replica(replica_dsn),
            root=work_dir() / "servers",
        )
    return None


def require_lasting_servers(write_dsn: str | None, read_dsn: str | None, why: str) -> None:
    """ValueError, before anything starts, when the command would start a throwaway pair, which
    cannot do `why` (e.g. hold an existing run database)."""
    if lasting_servers(write_dsn, read_dsn) is None:
        raise ValueError(
            f"{why}: no servers that outlive this command are in use (no running "
            f"`cqrs-bench db up` pair, no --write-dsn or {WRITE_DSN_ENV}); start them "
            "with `cqrs-bench db up`, or give yours with --write-dsn"
        )


@contextmanager
def use_servers(
    write_dsn: str | None = None,
    read_dsn: str | None = None,
    *,
    replica_dsn: str | None = None,
    announce=print,
) -> Iterator[Servers]:
    """Yield the servers a command should use, starting (and afterwards removing) a pair if needed
    (and the standby, if one was started for it)."""
    if lasting := lasting_servers(write_dsn, read_dsn, replica_dsn):
        yield lasting
        return
    sweep_orphans()
    root = _ephemeral_root(os.getpid())
    pair = {role: EmbeddedServer(root / role, role) for role in ROLES}
    try:
        announce(
            f"starting throwaway PostgreSQL servers in {root} (`cqrs-bench db up` keeps a pair)"
        )
        statuses = {role: server.start(cpus=role_cpus(role)) for role, server in pair.items()}
        yield Servers(
            statuses["write"].dsn,
            statuses["read"].dsn,
            origin="ephemeral",
            replica_dsn=given_replica(replica_dsn),
            root=root,
        )
    finally:
        EmbeddedServer(root / STANDBY, STANDBY).remove()  # first: it streams from the write one
        for server in pair.values():
            server.remove()
        shutil.rmtree(root, ignore_errors=True)
