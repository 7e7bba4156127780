"""A CPU quota for one component: a cgroup the harness makes for it, removed when it stops.

The component's process joins the cgroup before it executes its command (`wrap`), so it and
everything it starts later (worker processes) are inside. The quota itself is written once the
component is ready (`apply`): a starved service would otherwise spend its start-up (imports)
ten times slower, and a real one starved in production started long before. The cgroup's
`cpu.stat` tells how often the kernel throttled it: the direct evidence that the quota bound.

cgroup v1 (the `cpu` controller: `cpu.cfs_quota_us` / `cpu.cfs_period_us`) or v2 (`cpu.max`),
found from /proc/self/mounts; the cgroup is made beside this process's own (inside it, under
v1), so a quota that already bounds the harness still bounds the component. Needs Linux and the
right to make cgroups (root, or a delegated hierarchy). Also `cores_allowed`: the CPU a process
may use by the quotas of its cgroup and every cgroup above it.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

PERIOD_US = 100_000  # the kernel's default CFS period
PREFIX = "cqrs-bench-"
MOUNTS = Path("/proc/self/mounts")


class QuotaUnavailable(ValueError):
    """No cgroup with a CPU quota can be made here; the message is one line saying why."""


@dataclass(frozen=True)
class Hierarchy:
    """Where CPU cgroups live: the mount point, its version, and this process's cgroup in it."""

    version: int  # 1 or 2
    mount: Path
    own: str  # this process's cgroup, relative to the mount ("" for the root)

    @property
    def parent(self) -> Path:
        return self.mount / self.own if self.own else self.mount


def _mounts(mounts: Path = MOUNTS) -> list[tuple[str, str, set[str]]]:
    """(mount point, file system type, options) of every cgroup mount."""
    out = []
    for line in mounts.read_text().splitlines():
        fields = line.split()
        if len(fields) >= 4 and fields[2] in ("cgroup", "cgroup2"):
            out.append((fields[1], fields[2], set(fields[3].split(","))))
    return out


def _own_cgroup(version: int, pid: int | str = "self") -> str:
    """The cgroup of `pid` in the v1 `cpu` hierarchy or in the v2 one, relative to its mount."""
    for line in Path(f"/proc/{pid}/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if (version == 2 and controllers == "") or (
            version == 1 and "cpu" in controllers.split(",")
        ):
            return path.strip("/")
    return ""


def hierarchy(mounts: Path = MOUNTS) -> Hierarchy:
    """The cgroup hierarchy that has the cpu controller (v1 preferred when both are mounted,
    as v1 then holds the controller); QuotaUnavailable when there is none."""
    found = _mounts(mounts)
    for point, kind, options in found:
        if kind == "cgroup" and "cpu" in options:
            return Hierarchy(1, Path(point), _own_cgroup(1))
    for point, kind, _options in found:
        controllers = Path(point) / "cgroup.controllers"
        if kind == "cgroup2" and "cpu" in _read(controllers).split():
            return Hierarchy(2, Path(point), _own_cgroup(2))
    raise QuotaUnavailable(
        "no cgroup hierarchy with the cpu controller is mounted here "
        "(neither cgroup v1 `cpu` nor cgroup v2 with `cpu` in cgroup.controllers)"
    )


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _quota_cores(cgroup: Path, version: int) -> float | None:
    """The quota of one cgroup in cores, None when it has none (or it cannot be read)."""
    if version == 1:
        quota, period = _read(cgroup / "cpu.cfs_quota_us"), _read(cgroup / "cpu.cfs_period_us")
        if not quota or not period or int(quota) <= 0:
            return None
        return int(quota) / int(period)
    fields = _read(cgroup / "cpu.max").split()
    if len(fields) != 2 or fields[0] == "max":
        return None
    return int(fields[0]) / int(fields[1])


def cores_allowed(pid: int | str = "self") -> tuple[float | None, str]:
    """The CPU `pid` may use by the quotas of its cgroup and the cgroups above it (the
    smallest), and the cgroup that sets it; (None, "") when no quota bounds it or none can be
    read."""
    try:
        found = hierarchy()
        own = _own_cgroup(found.version, pid)
    except (OSError, QuotaUnavailable, ValueError):
        return None, ""
    best: tuple[float | None, str] = (None, "")
    parts = own.split("/") if own else []
    for depth in range(len(parts), -1, -1):
        cores = _quota_cores(found.mount.joinpath(*parts[:depth]), found.version)
        if cores is not None and (best[0] is None or cores < best[0]):
            best = (cores, "/" + "/".join(parts[:depth]))
    return best


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


class CpuQuota:
    """A cgroup for one component, limited to `cores` CPUs once `apply`d.

    create() makes it (with no limit yet), wrap() turns a command into one that joins it first,
    apply() writes the quota, stat() reads its throttling, remove() ends it (its processes, if
    any are left, move to the parent first). QuotaUnavailable (one line) when it cannot.
    """

    def __init__(self, cores: float, name: str, period_us: int = PERIOD_US) -> None:
        if not cores > 0:
            raise QuotaUnavailable(f"a CPU quota must be > 0 cores, not {cores!r}")
        self.cores, self.name, self.period_us = float(cores), name, period_us
        self.quota_us = max(1000, round(self.cores * period_us))  # the kernel's minimum: 1 ms
        self.path: Path | None = None
        self.version = 0
        self.applied = False
        self.at_apply: dict[str, float] = {}
        self.final: dict[str, float] | None = None

    def create(self) -> Path:
        found = hierarchy()
        self.version = found.version
        _remove_stale(found.parent)
        path = found.parent / f"{PREFIX}{os.getpid()}-{self.name}"
        try:
            if found.version == 2:
                _enable_cpu(found.parent)
            path.mkdir(exist_ok=True)
            self.path = path
            self._limit(None)  # nothing left over from a cgroup of the same name
        except OSError as exc:
            self.path = None
            with contextlib.suppress(OSError):
                path.rmdir()
            raise QuotaUnavailable(_why(path, exc)) from None
        return path

    def wrap(self, command: list[str]) -> list[str]:
        """`command`, run by a shell that first moves itself into the cgroup (then execs it:
        same PID, and every process it starts inherits the cgroup)."""
        assert self.path is not None, "create() first"
        join = 'echo $$ > "$0" && exec "$@"'
        return ["/bin/sh", "-c", join, str(self.path / "cgroup.procs"), *command]

    def _limit(self, quota_us: int | None) -> None:
        path = self.path
        assert path is not None, "create() first"
        if self.version == 1:
            (path / "cpu.cfs_period_us").write_text(str(self.period_us))
            (path / "cpu.cfs_quota_us").write_text(str(quota_us if quota_us else -1))
        else:
            (path / "cpu.max").write_text(f"{quota_us or 'max'} {self.period_us}")

    def apply(self) -> None:
        """Write the quota (from now on the component gets at most `cores` CPUs)."""
        if self.path is None or self.applied:
            return
        try:
            self._limit(self.quota_us)
        except OSError as exc:
            raise QuotaUnavailable(_why(self.path, exc)) from None
        self.applied = True
        self.at_apply = self.stat()

    def stat(self) -> dict[str, float]:
        """`nr_periods` (quota periods in which the cgroup ran), `nr_throttled` (those that ended
        with it throttled) and `throttled_s` (time spent throttled), cumulative; {} if unreadable."""
        if self.path is None:
            return {}
        fields = {}
        for line in _read(self.path / "cpu.stat").splitlines():
            key, _, value = line.partition(" ")
            if value.strip().isdigit():
                fields[key] = int(value)
        if "throttled_time" in fields:  # v1: nanoseconds
            throttled = fields["throttled_time"] / 1e9
        else:  # v2: microseconds
            throttled = fields.get("throttled_usec", 0) / 1e6
        if "nr_periods" not in fields:
            return {}
        return {
            "nr_periods": fields["nr_periods"],
            "nr_throttled": fields.get("nr_throttled", 0),
            "throttled_s": round(throttled, 6),
        }

    def lift(self) -> None:
        """Read the final throttling and lift the quota (so that a starved component stops as
        fast as any other)."""
        if self.path is None or self.final is not None:
            return
        self.final = self.stat()
        with contextlib.suppress(OSError):
            self._limit(None)

    def remove(self, timeout: float = 5.0) -> None:
        """Lift the quota if still on, then remove the cgroup (after its processes are gone: they
        are moved to the parent if they outlive `timeout`)."""
        if self.path is None:
            return
        self.lift()
        deadline = time.monotonic() + timeout
        while True:
            try:
                self.path.rmdir()
                break
            except FileNotFoundError:
                break
            except OSError as exc:
                if exc.errno != errno.EBUSY or time.monotonic() > deadline:
                    _evacuate(self.path)
                    with contextlib.suppress(OSError):
                        self.path.rmdir()
                    break
                time.sleep(0.05)
        self.path = None

    def record(self) -> dict:
        """What run.json keeps of it: the quota, the cgroup, and its throttling from `apply` to
        `lift` (the component's life from ready to being stopped: warm-up, measure phase and the
        end of the load)."""
        since = {
            key: round(value - self.at_apply.get(key, 0), 6)
            for key, value in (self.final or {}).items()
        }
        periods = since.get("nr_periods", 0)
        return {
            "cores": self.cores,
            "quota_us": self.quota_us,
            "period_us": self.period_us,
            "cgroup_version": self.version,
            "applied": self.applied,
            **since,
            "throttled_share": round(since["nr_throttled"] / periods, 4) if periods else None,
        }


def check(cores: float) -> None:
    """QuotaUnavailable (one line) unless a cgroup limited to `cores` can be made here: made and
    removed at once, so a run refuses the option before anything starts."""
    probe = CpuQuota(cores, "probe")
    probe.create()
    try:
        probe.apply()
    finally:
        probe.remove()


def _why(path: Path, exc: OSError) -> str:
    return (
        f"cannot make a CPU-quota cgroup at {path}: {exc.strerror or exc} (it needs root, or a "
        "delegated cgroup, and a writable cpu controller)"
    )


def _enable_cpu(parent: Path) -> None:
    """cgroup v2: let the children of `parent` use the cpu controller."""
    control = parent / "cgroup.subtree_control"
    if "cpu" not in _read(control).split():
        control.write_text("+cpu")


def _evacuate(path: Path) -> None:
    """Move the processes left in the cgroup `path` to its parent."""
    for pid in _read(path / "cgroup.procs").split():
        with contextlib.suppress(OSError):
            (path.parent / "cgroup.procs").write_text(pid)


def _remove_stale(parent: Path) -> None:
    """Remove the empty cgroups of harness processes that are gone (killed before removing
    theirs)."""
    try:
        children = list(parent.iterdir())
    except OSError:
        return
    for child in children:
        found = re.fullmatch(rf"{PREFIX}(\d+)-.+", child.name)
        if found and child.is_dir() and not _pid_alive(int(found.group(1))):
            with contextlib.suppress(OSError):
                child.rmdir()
