"""Locust master and workers (`--master` / `--worker`): what travels between them.

- **The workload**: the master puts its resolved config (catalog inline) and the text of the mix
  and shape files into `parsed_options.cqrs_payload`; Locust forwards custom options to workers
  in every spawn message, so a worker (possibly on another machine) needs no file of the
  runner's. Workers build transport, catalog and users when the test starts.
- **Places**: before the spawn messages, the master works out with Locust's own dispatcher how
  many users of each class every worker will get and gives each worker an offset per class
  (`parsed_options.cqrs_layout`). A user's index is offset + its index within its worker: the
  indices of a class are 0..n-1 over all workers, as in one process, so the request streams,
  idempotency keys and shape gating are the same for any number of workers.
- **Results**: a worker's recorder writes nothing; its finished lines ride on Locust's stats
  report (`report_to_master`) and the master appends them to its own `seconds-<pid>.jsonl` /
  `queries-<pid>.jsonl` with `"worker": <index>`, as they are (each second's users per class
  too: `merge_seconds` sums them over the workers).
- **The last second**: when the master stops, before it tells workers to quit, it asks each one
  to stop its users and send a final report, and waits for them (`cqrs_stop` / `cqrs_stopped`).
"""

from __future__ import annotations

import json
import logging
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import gevent
from locust.runners import STATE_MISSING, MasterRunner, WorkerRunner
from locust.stats import CSV_STATS_INTERVAL_SEC

from workloads.recorder import Recorder, append_lines

SECONDS_KEY, QUERIES_KEY = "cqrs_seconds", "cqrs_queries"
STOP_WAIT_S = 30.0  # beyond the stop timeout, for workers' final reports
log = logging.getLogger("cqrs-bench")


def role(environment) -> str:
    runner = environment.runner
    return (
        "master"
        if isinstance(runner, MasterRunner)
        else "worker"
        if isinstance(runner, WorkerRunner)
        else "local"
    )


def payload(config_json: str, mix_path: Path, shape_path: Path) -> str:
    return json.dumps(
        {
            "config": config_json,
            "mix": [mix_path.name, mix_path.read_text()],
            "shape": [shape_path.name, shape_path.read_text()],
        }
    )


def unpack(text: str) -> tuple[str, str, str]:
    """(config JSON, mix path, shape path): the files written to a private temporary folder."""
    data = json.loads(text)
    folder = Path(tempfile.mkdtemp(prefix="cqrs-bench-worker-"))
    paths = []
    for kind in ("mix", "shape"):
        name, content = data[kind]
        (folder / kind).mkdir()
        path = folder / kind / Path(name).name
        path.write_text(content)
        paths.append(str(path))
    return data["config"], *paths


def layout(environment) -> dict[str, dict[str, list[int]]]:
    """{worker id: {class: [offset, count]}}: the final distribution of Locust's dispatcher."""
    runner = environment.runner
    workers = runner.clients.ready + runner.clients.running + runner.clients.spawning
    total = runner.target_user_count
    dispatcher = environment.dispatcher_class(
        worker_nodes=workers, user_classes=runner.user_classes
    )
    dispatcher.new_dispatch(target_user_count=total, spawn_rate=max(total, 1))
    final: dict[str, dict[str, int]] = {}
    for final in dispatcher:  # noqa: B007 - the last iteration is the distribution
        pass
    offsets: dict[str, int] = {}
    places: dict[str, dict[str, list[int]]] = {}
    for worker_id in sorted(final, key=runner.get_worker_index):
        places[worker_id] = {}
        for name, count in sorted(final[worker_id].items()):
            places[worker_id][name] = [offsets.get(name, 0), count]
            offsets[name] = offsets.get(name, 0) + count
    return places


class Master:
    """Hooks on the master: layout at test start, workers' lines into `out_dir`, final reports."""

    def __init__(self, environment, out_dir: str) -> None:
        self.environment = environment
        directory = Path(out_dir)
        directory.mkdir(parents=True, exist_ok=True)
        self.seconds_path = directory / f"seconds-{os.getpid()}.jsonl"
        self.queries_path = directory / f"queries-{os.getpid()}.jsonl"
        self.waiting: set[str] = set()
        events, runner = environment.events, environment.runner
        events.test_start.add_listener(self.on_test_start)
        events.worker_report.add_listener(self.on_worker_report)
        events.test_stop.add_listener(self.on_test_stop)
        runner.register_message(
            "cqrs_stopped", lambda msg, **_kw: self.waiting.discard(msg.node_id)
        )

    def on_test_start(self, environment, **_kwargs) -> None:
        environment.parsed_options.cqrs_layout = layout(environment)

    def on_worker_report(self, client_id: str, data: dict) -> None:
        worker = self.environment.runner.get_worker_index(client_id)
        append_lines(self.seconds_path, data.get(SECONDS_KEY, []), worker=worker)
        append_lines(self.queries_path, data.get(QUERIES_KEY, []), worker=worker)

    def on_test_stop(self, environment, **_kwargs) -> None:
        runner = environment.runner
        self.waiting = {c.id for c in runner.clients.all if c.state != STATE_MISSING}
        for client_id in list(self.waiting):
            runner.send_message("cqrs_stop", None, client_id)
        deadline = time.monotonic() + (environment.stop_timeout or 0) + STOP_WAIT_S
        while self.waiting and time.monotonic() < deadline:
            gevent.sleep(0.05)
        if self.waiting:
            log.warning("no final report from worker(s) %s", ", ".join(sorted(self.waiting)))
        if getattr(environment.parsed_options, "csv_prefix", None):
            gevent.sleep(CSV_STATS_INTERVAL_SEC + 0.2)  # Locust's CSV writer sees the final reports


class Worker:
    """Hooks on a worker: the recorder's lines on every stats report; stop on the master's word."""

    def __init__(self, environment, recorder: Callable[[], Recorder | None]) -> None:
        self.recorder = recorder
        environment.events.report_to_master.add_listener(self.on_report)
        environment.runner.register_message("cqrs_stop", self.on_stop)

    def on_report(self, client_id: str, data: dict) -> None:
        recorder = self.recorder()
        if recorder is not None:
            data[SECONDS_KEY], data[QUERIES_KEY] = recorder.take()

    def on_stop(self, environment, msg, **_kwargs) -> None:
        runner = environment.runner
        runner.stop()  # users stopped, test_stop fired: the recorder holds every second
        runner._send_stats()  # Locust's stats and our lines, in one report  # noqa: SLF001
        runner.send_message("cqrs_stopped")
