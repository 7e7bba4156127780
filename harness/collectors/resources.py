"""CPU seconds and memory per component (each server, the service, the projector, Locust): the
`resources` table, sampled with psutil.

A component is a root process, with all its descendants when named in include_children (a
postmaster and its backends; a Locust master and its workers).

CPU is cumulative since the component's first sample, per process tree, and loses nothing when
children come and go: each live process counts its own time plus its `children_*` times (the
time of descendants it has reaped, which Linux adds to the reaper when it waits for them). So a
backend that lives 50 ms between two samples is still counted, through the postmaster that
reaps it. When a process seen last round is gone and the tree's reaped time grew by less than
that process's last known time (it was reaped outside the tree, e.g. re-parented to init), the
difference is added back, so the total never falls; what such a process used after its last
sample is lost (at most one interval of it). Without include_children only the process's own
time counts.

rss_bytes is the sum of RSS over the tree. PostgreSQL backends map the shared buffers, so their
RSS counts the shared memory each of them has touched: the sum over-counts (USS would not, but
reading it costs a walk of every process's page map each sample).
A process that disappears is no longer sampled (a root that is gone ends its component's rows).

The component `machine` (add_machine) is the whole machine, whatever runs on it: its busy CPU
seconds from /proc/stat (user and nice as user; system, irq, softirq and steal as system: time
no process of this machine could use), cumulative since its first sample; `processes` is every
process on the machine and `rss_bytes` the memory in use.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pandas as pd
import psutil

from harness.collectors.base import TS, Sampler, typed_frame

COLUMNS = {
    "ts": TS,
    "component": "str",
    "processes": "int64",
    "cpu_user_s": "float64",
    "cpu_system_s": "float64",
    "rss_bytes": "int64",
}
GONE = (psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied)


def _times(proc: psutil.Process) -> tuple[tuple[float, float, float, float], int]:
    """((user, system, reaped children's user, reaped children's system), rss) of a process."""
    with proc.oneshot():
        t = proc.cpu_times()
        rss = proc.memory_info().rss
    return (t.user, t.system, t.children_user, t.children_system), rss


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds the live process `pid` has used since it started (its own,
    not its children's)."""
    (user, system, _, _), _rss = _times(psutil.Process(pid))
    return user + system


class _Tree:
    """One component's accounting between samples."""

    def __init__(self, name: str, pid: int, children: bool) -> None:
        self.name, self.children = name, children
        self.root = psutil.Process(pid)
        # (pid, created) -> (user, system, reaped user, reaped system)
        self.last: dict[tuple[int, float], tuple[float, float, float, float]] = {}
        self.base: tuple[float, float] | None = None
        self.carried = [0.0, 0.0]  # time of processes that left the tree unreaped
        self.reported = (0.0, 0.0)
        self.gone = False

    def sample(self) -> dict | None:
        if self.gone:
            return None
        procs = [self.root]
        try:
            if self.children:
                procs += self.root.children(recursive=True)
        except GONE:
            self.gone = True
            return None
        now: dict[tuple[int, float], tuple[float, float, float, float]] = {}
        rss = 0
        for proc in procs:
            try:
                key = (proc.pid, proc.create_time())
                times, r = _times(proc)
            except GONE:
                if proc is self.root:
                    self.gone = True
                    return None
                continue
            now[key] = times if self.children else (times[0], times[1], 0.0, 0.0)
            rss += r
        if self.children and self.last:
            exited = [self.last[k] for k in self.last if k not in now]
            for i in (0, 1):
                # Time the tree reaped this round, against the time of the processes that left.
                reaped = sum(
                    max(0.0, now[k][2 + i] - self.last[k][2 + i]) for k in now if k in self.last
                )
                unaccounted = sum(e[i] + e[2 + i] for e in exited) - reaped
                if unaccounted > 0:
                    self.carried[i] += unaccounted
        self.last = now
        totals = [sum(v[i] + v[2 + i] for v in now.values()) + self.carried[i] for i in (0, 1)]
        if self.base is None:
            self.base = (totals[0], totals[1])
        # Never decreasing, whatever the bookkeeping above missed.
        self.reported = (
            max(self.reported[0], totals[0] - self.base[0]),
            max(self.reported[1], totals[1] - self.base[1]),
        )
        return {
            "ts": datetime.now(UTC),
            "component": self.name,
            "processes": len(now),
            "cpu_user_s": self.reported[0],
            "cpu_system_s": self.reported[1],
            "rss_bytes": rss,
        }


MACHINE = "machine"


class _Machine:
    """The whole machine's busy CPU, as a component's rows."""

    name = MACHINE

    def __init__(self) -> None:
        self.base: tuple[float, float] | None = None

    def sample(self) -> dict:
        t = psutil.cpu_times()
        user = t.user + getattr(t, "nice", 0.0)
        system = t.system + sum(getattr(t, f, 0.0) for f in ("irq", "softirq", "steal"))
        if self.base is None:
            self.base = (user, system)
        return {
            "ts": datetime.now(UTC),
            "component": self.name,
            "processes": len(psutil.pids()),
            "cpu_user_s": max(0.0, user - self.base[0]),
            "cpu_system_s": max(0.0, system - self.base[1]),
            "rss_bytes": psutil.virtual_memory().used,
        }


class ResourceSampler(Sampler):
    """Samples the CPU and memory of components (name -> root pid) every `interval` seconds.

    add() adds a component later (e.g. the service, started after the servers).
    """

    name = "resources"

    def __init__(
        self,
        components: dict[str, int] | None = None,
        include_children: set[str] | None = None,
        interval: float = 1.0,
    ) -> None:
        super().__init__(interval)
        self._trees: list[_Tree | _Machine] = []
        self._rows: list[dict] = []
        self._trees_lock = threading.Lock()
        include_children = include_children or set()
        for name, pid in (components or {}).items():
            self.add(name, pid, children=name in include_children)

    def add(self, name: str, pid: int, children: bool = False) -> None:
        """Sample `pid` (with its descendants if `children`) as component `name` from now on.

        Raises psutil.NoSuchProcess if there is no such process.
        """
        tree = _Tree(name, pid, children)
        with self._trees_lock:
            self._trees.append(tree)

    def add_machine(self) -> None:
        """Sample the whole machine's CPU as component `machine` from now on."""
        with self._trees_lock:
            self._trees.append(_Machine())

    def _sample(self) -> None:
        with self._trees_lock:
            trees = list(self._trees)
        rows = [row for tree in trees if (row := tree.sample()) is not None]
        with self._lock:
            self._rows.extend(rows)

    def frame(self) -> pd.DataFrame:
        with self._lock:
            rows = list(self._rows)
        return typed_frame(rows, COLUMNS)
