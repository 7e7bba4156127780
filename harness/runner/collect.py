"""The collectors of one implementation's run (DESIGN section 6), started and stopped together.

Beside the load: active-session sampling of every server, the xmin horizon's holder and the
tables' statistics of every run database, CPU and memory per component, and, for CQRS, the
projection's event lag. Around the measurement window: the database statistics
(before/after), pg_stat_statements (reset at its start, read at its end) and the server logs'
lock waits. Each sampler thread that fails is named when the collectors are checked.
"""

from __future__ import annotations

import os
from pathlib import Path

import pandas as pd
import psutil
import psycopg

from harness.collectors import (
    activity,
    db_stats,
    horizon,
    lag,
    replay,
    resources,
    server_log,
    statements,
    table_stats,
    wait_profile,
)
from harness.collectors.base import CollectorError
from harness.deploy.components import ComponentFailed
from implementations.interface import Projection


def postmaster_pid(dsn: str) -> int | None:
    """The PID of the server at `dsn` if it runs on this machine: its postmaster.pid names a live
    postgres process here (not so for a remote server, or one in another container)."""
    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=5) as conn:
            datadir = Path(conn.execute("SHOW data_directory").fetchone()[0])
        pid = int((datadir / "postmaster.pid").read_text().split()[0])
        return pid if psutil.Process(pid).name().startswith("postgres") else None
    except (psycopg.Error, OSError, ValueError, IndexError, psutil.Error):
        return None


class RunCollectors:
    def __init__(
        self,
        *,
        servers: dict[str, str],
        databases: dict[str, str],
        projection: Projection | None,
        warnings: list[str],
        standby: tuple[str, str] | None = None,
    ) -> None:
        """`servers`: role → admin DSN (one entry when both roles share a server);
        `databases`: role → DSN of the run's database there; `projection`: the implementation's, if it has one;
        `standby`: (the primary's DSN, the run database's on its standby) when queries read one."""
        self.servers, self.databases, self.warnings = servers, databases, warnings
        self.activity = activity.ActivitySampler(
            servers, hz=activity.HZ, databases={_dbname(d) for d in databases.values()}
        )
        # where the wait shares of sessions come from (run.json records it per implementation):
        # the write server's pg_wait_sampling profile when it is loaded and samples backends on
        # CPU too, else the 10 Hz rounds of the activity sampler (see choose_wait_sampler)
        self.wait_profile, self.wait_sampler, self.wait_profile_note = _wait_profile(databases)
        self.horizon = horizon.HorizonSampler(databases)
        # a standby's tables are the primary's (it keeps no statistics of dead tuples)
        self.table_stats = table_stats.TableStatsSampler(
            {role: dsn for role, dsn in databases.items() if role != "standby"}
        )
        self.resources = resources.ResourceSampler({}, include_children=set(), interval=1.0)
        self.lag = (
            lag.LagSampler(*projection.dsns, interval=0.5, source=projection.source)
            if projection
            else None
        )
        self.replay = replay.ReplaySampler(*standby) if standby else None
        self.tails = {}
        for role, dsn in servers.items():
            pid, log = postmaster_pid(dsn), server_log.log_path_for(dsn)
            if pid:
                self.resources.add(f"{role}_server", pid, children=True)
            if log:
                self.tails[role] = server_log.LogTail(log, role)
            else:
                warnings.append(
                    f"{role} server: no log file here, lock waits from its log are not collected"
                )
        self.resources.add("runner", os.getpid(), children=False)
        self.resources.add_machine()
        self.before: dict[str, dict] = {}
        self.failure: ComponentFailed | None = None  # a sampler that failed, known after stop()
        self.frames: dict[str, list[pd.DataFrame]] = {}

    def start(self) -> None:
        for tail in self.tails.values():
            tail.start()
        self.activity.start()
        if self.wait_profile:
            self.wait_profile.start()
        self.horizon.start()
        self.table_stats.start()
        self.resources.start()
        for sampler in (self.lag, self.replay):
            if sampler:
                sampler.start()

    def add_component(self, name: str, pid: int) -> None:
        self.resources.add(name, pid, children=True)

    def check(self) -> None:
        """Raise ComponentFailed if a sampler thread died."""
        for name, sampler in (
            ("activity sampler", self.activity),
            ("wait profile sampler", self.wait_profile),
            ("horizon sampler", self.horizon),
            ("table stats sampler", self.table_stats),
            ("resource sampler", self.resources),
            ("lag sampler", self.lag),
            ("replay sampler", self.replay),
        ):
            if sampler is not None and sampler.error is not None:
                raise ComponentFailed(
                    name, Path("(the runner's own output)"), f"failed: {sampler.error!r}"
                )

    def lag_now(self) -> str | None:
        """The projection's or the standby's lag at the last poll, for a progress line."""
        sampler = self.lag or self.replay
        return sampler.latest() if sampler else None

    def begin_measure(self) -> None:
        self.before = {role: db_stats.snapshot(dsn) for role, dsn in self.databases.items()}
        for dsn in self.servers.values():
            statements.reset(dsn)

    def end_measure(self) -> None:
        """The statistics after the window, of every server still reachable (a server that went
        away is named in a warning: the failure that stopped the run is reported, not this)."""
        if not self.before:
            return
        for role, dsn in self.databases.items():
            try:
                after = db_stats.snapshot(dsn)
            except psycopg.OperationalError as exc:
                self.warnings.append(f"{role} server: statistics not read: {exc}")
                continue
            self._add("db_stats", db_stats.deltas(self.before[role], after, role, _dbname(dsn)))
        for role, dsn in self.servers.items():
            try:
                frame, warning = statements.read(
                    dsn, role, {_dbname(d) for d in self.databases.values()}
                )
            except psycopg.OperationalError as exc:
                frame, warning = None, f"statements not read: {exc}"
            self._add("statements", frame)
            if warning:
                self.warnings.append(f"{role} server: {warning}")
        self.before = {}

    def stop(self) -> dict[str, list[pd.DataFrame]]:
        """Stop every sampler (also after a failure) and hand over what they gathered; a sampler
        that failed keeps what it had and is named once all are stopped."""
        failed = []
        samplers = {
            "waits": self.activity,
            "wait_profile": self.wait_profile,
            "horizon": self.horizon,
            "table_stats": self.table_stats,
            "resources": self.resources,
            "lag": self.lag,
            "replay": self.replay,
        }
        for table, sampler in samplers.items():
            if sampler is None:
                continue
            try:
                self._add(table, sampler.stop())
            except CollectorError as exc:
                self._add(table, exc.frame)
                failed.append(exc)
        for tail in self.tails.values():
            self._add("lock_waits", tail.read())
        if failed:
            self.failure = ComponentFailed(
                failed[0].component, Path("(the run's output)"), f"failed: {failed[0]}"
            )
        return self.frames

    def _add(self, table: str, frame: pd.DataFrame) -> None:
        if frame is not None and len(frame):
            self.frames.setdefault(table, []).append(frame)


def choose_wait_sampler(found: wait_profile.Probe) -> tuple[str, str]:
    """Where the wait shares come from, given the write server's probe: `pg_wait_sampling` when
    its profile can be read and samples backends on CPU (without CPU samples its shares would
    leave out the CPU), else `activity`; and a note on the profile, for run.json."""
    if not found.usable:
        return "activity", f"not collected: {found.reason}"
    if not found.cpu_sampled:
        return "activity", (
            f"collected (extension SQL version {found.version}), without CPU samples "
            "(pg_wait_sampling before 1.1.6, or pg_wait_sampling.sample_cpu off): waits only"
        )
    return (
        wait_profile.EXTENSION,
        f"collected (extension SQL version {found.version}), with CPU samples",
    )


def _wait_profile(
    databases: dict[str, str],
) -> tuple[wait_profile.WaitProfileSampler | None, str, str]:
    """The pg_wait_sampling sampler of the write server's run database when the server has the
    extension (None otherwise), the wait sampler chosen, and the note on the profile."""
    dsn = databases["write"]
    try:
        found = wait_profile.probe(dsn)
    except psycopg.Error as exc:
        found = wait_profile.Probe(False, reason=f"probe failed: {exc}")
    used, note = choose_wait_sampler(found)
    if not found.usable:
        return None, used, note
    return wait_profile.WaitProfileSampler({"write": dsn}, {_dbname(dsn)}), used, note


def _dbname(dsn: str) -> str:
    return psycopg.conninfo.conninfo_to_dict(dsn).get("dbname") or "postgres"
