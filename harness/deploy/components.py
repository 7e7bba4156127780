"""The processes the harness starts (API service, projector, Locust): each with its own log, each
stopped by its PID (its process group: Locust's workers go with it), also on Ctrl-C or failure.

A harness command started as a component is told `--exit-with-parent`, and watches its parent with
`watch_parent`: a parent killed without stopping it still takes it along.

A component given a CPU quota (`limit_cpu`) runs in a cgroup of its own (harness/deploy/cpu_quota.py),
limited from when it is ready and removed when it stops.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

from harness.deploy.cpu_quota import CpuQuota
from harness.postgres.servers import (
    READ_DSN_ENV,
    REPLICA_DSN_ENV,
    WRITE_DSN_ENV,
    Servers,
    standby_server,
)

EXIT_WITH_PARENT = "--exit-with-parent"


class ComponentFailed(RuntimeError):
    """A component exited or never became ready: the message names it and its log."""

    def __init__(self, component: str, log: Path, why: str) -> None:
        super().__init__(f"{component} {why}; see its log: {log}")
        self.component = component
        self.log = log


def harness_command(*args: str) -> list[str]:
    """`cqrs-bench ARGS` run by this interpreter."""
    return [sys.executable, "-m", "harness", *args]


def dsn_env(write_dsn: str, read_dsn: str) -> dict[str, str]:
    """The servers a harness command uses, handed over in its environment (off its command line,
    where every user of the machine could read a password)."""
    return {WRITE_DSN_ENV: write_dsn, READ_DSN_ENV: read_dsn}


def servers_env(servers: Servers) -> dict[str, str]:
    """dsn_env of these servers, and their standby's DSN when one is given or running."""
    env = dsn_env(servers.write_dsn, servers.read_dsn)
    replica = servers.replica_dsn
    if not replica and (embedded := standby_server(servers)):
        replica = embedded.status().dsn
    if replica:
        env[REPLICA_DSN_ENV] = replica
    return env


def watch_parent(stop: Callable[[], None], interval: float = 1.0) -> None:
    """Call `stop()` once the process that started this one has ended (checked every `interval`
    seconds, in a daemon thread)."""
    parent = os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(interval)
        stop()

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def _last_line(log: Path) -> str:
    """The last line a component wrote to its log (what it died of), or ''."""
    try:
        with log.open("rb") as f:
            f.seek(max(0, f.seek(0, os.SEEK_END) - 4096))
            lines = f.read().decode(errors="replace").strip().splitlines()
    except OSError:
        return ""
    return lines[-1].strip() if lines else ""


class Component:
    def __init__(self, name: str, command: list[str], log: Path, env: dict | None = None) -> None:
        self.name, self.command, self.log, self.env = name, command, log, env
        self.proc: subprocess.Popen | None = None
        self.cpu_quota: CpuQuota | None = None
        self._quota_when_ready = True

    def limit_cpu(self, cores: float, when_ready: bool = True) -> Component:
        """Run it in a cgroup of its own, limited to `cores` CPUs once it is ready (`wait_ready`;
        from its start if not `when_ready`). Call before start."""
        self.cpu_quota = CpuQuota(cores, self.name)
        self._quota_when_ready = when_ready
        return self

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> Component:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        command = self.command
        if self.cpu_quota:  # (a cgroup left by a start that failed is removed as stale later)
            self.cpu_quota.create()
            command = self.cpu_quota.wrap(command)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(self.env or {})},
                start_new_session=True,
            )
        if self.cpu_quota and not self._quota_when_ready:
            self.cpu_quota.apply()
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check(self) -> None:
        """Raise ComponentFailed if the component has exited (with the last line of its log)."""
        if self.proc is not None and self.proc.poll() is not None:
            last = _last_line(self.log)
            raise ComponentFailed(
                self.name,
                self.log,
                f"exited with code {self.proc.returncode}" + (f" ({last})" if last else ""),
            )

    def wait_ready(self, ready: Callable[[], bool], timeout: float) -> None:
        """Until `ready()` is true; ComponentFailed if it exits first or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while not ready():
            self.check()
            if time.monotonic() > deadline:
                raise ComponentFailed(self.name, self.log, f"was not ready after {timeout:.0f}s")
            time.sleep(0.1)
        if self.cpu_quota:
            self.cpu_quota.apply()

    def wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM to the component's process group, SIGKILL after `timeout`; then its cgroup
        (if it has a CPU quota) is removed."""
        if self.proc is None:
            return
        if self.cpu_quota:
            self.cpu_quota.lift()  # a starved component stops as fast as any other
        if self.proc.poll() is None:
            self._signal(signal.SIGTERM)
            if self.wait(timeout) is None:
                self._signal(signal.SIGKILL)
                self.proc.wait()
        self._signal(signal.SIGKILL)  # children that outlived their parent
        if self.cpu_quota:
            self.cpu_quota.remove()

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)  # the group this component leads (start_new_session)
        except ProcessLookupError:
            pass
