"""The refresher as a process of its own (`cqrs-bench refresh run`): the one way the harness
starts the background refresh of an implementation's materialized views (`impl.refresher`).

It refreshes every view once at its start, then every `interval` seconds (measured from the
start of one round of refreshes to the next; a round longer than the interval starts the next at
once), appending one JSON line per refresh to its record file (`read_refreshes` reads it), and
exits with the process that started it.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from harness.deploy.components import EXIT_WITH_PARENT, Component, dsn_env, harness_command
from implementations import registry
from implementations.interface import Config, Refreshed, Refresher

INTERVAL = 5.0  # seconds between rounds of refreshes, `run --refresh-interval`'s default


def refresher_on(impl: str, write_dsn: str, read_dsn: str) -> Refresher:
    """`impl`'s refresher on these databases; ValueError when it has none."""
    refresher = registry.create(impl, Config(write_dsn, read_dsn)).refresher
    if refresher is None:
        raise ValueError(f"{impl} has no refresher")
    return refresher


def record_line(refreshed: Refreshed) -> str:
    return json.dumps(asdict(refreshed))


def read_refreshes(path: Path) -> list[dict]:
    """The refresher's records (view, started_at, ended_at, backend_cpu_s), blank lines skipped."""
    if not path.exists():
        return []
    with path.open() as f:
        return [json.loads(line) for line in f if line.strip()]


class RefresherProcess(Component):
    """`cqrs-bench refresh run` for `impl` on its databases, recording into `record`."""

    def __init__(
        self,
        impl: str,
        dsns: tuple[str, str],
        log: Path,
        *,
        record: Path,
        interval: float = INTERVAL,
    ) -> None:
        write_dsn, read_dsn = dsns
        self.views = len(set(refresher_on(impl, write_dsn, read_dsn).reads.values()))
        self.record = record
        options = ["--interval", str(interval), "--record", str(record), EXIT_WITH_PARENT]
        command = harness_command("refresh", "run", "--impl", impl, *options)
        super().__init__("refresher", command, log, env=dsn_env(write_dsn, read_dsn))

    def wait_active(self, timeout: float = 300) -> None:
        """Until its first round has refreshed every view; ComponentFailed if it exits first or
        `timeout` passes."""
        self.wait_ready(lambda: len(read_refreshes(self.record)) >= self.views, timeout)
