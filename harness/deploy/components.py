"""The processes a run starts (API service, projector, Locust): each with its own log, each
stopped by its PID (its process group: Locust's workers go with it), also on Ctrl-C or failure."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable
from pathlib import Path


class ComponentFailed(RuntimeError):
    """A component exited or never became ready: the message names it and its log."""

    def __init__(self, component: str, log: Path, why: str) -> None:
        super().__init__(f"{component} {why}; see its log: {log}")
        self.component = component
        self.log = log


class Component:
    def __init__(self, name: str, command: list[str], log: Path, env: dict | None = None) -> None:
        self.name, self.command, self.log, self.env = name, command, log, env
        self.proc: subprocess.Popen | None = None

    @property
    def pid(self) -> int | None:
        return self.proc.pid if self.proc else None

    def start(self) -> Component:
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            self.proc = subprocess.Popen(
                self.command,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                env={**os.environ, **(self.env or {})},
                start_new_session=True,
            )
        return self

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def check(self) -> None:
        """Raise ComponentFailed if the component has exited."""
        if self.proc is not None and self.proc.poll() is not None:
            raise ComponentFailed(self.name, self.log, f"exited with code {self.proc.returncode}")

    def wait_ready(self, ready: Callable[[], bool], timeout: float) -> None:
        """Until `ready()` is true; ComponentFailed if it exits first or `timeout` passes."""
        deadline = time.monotonic() + timeout
        while not ready():
            self.check()
            if time.monotonic() > deadline:
                raise ComponentFailed(self.name, self.log, f"was not ready after {timeout:.0f}s")
            time.sleep(0.1)

    def wait(self, timeout: float) -> int | None:
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return None

    def stop(self, timeout: float = 20) -> None:
        """SIGTERM to the component's process group, SIGKILL after `timeout`."""
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self._signal(signal.SIGTERM)
            if self.wait(timeout) is None:
                self._signal(signal.SIGKILL)
                self.proc.wait()
        self._signal(signal.SIGKILL)  # children that outlived their parent

    def _signal(self, sig: int) -> None:
        try:
            os.killpg(self.proc.pid, sig)  # the group this component leads (start_new_session)
        except ProcessLookupError:
            pass
