"""`cqrs-bench run`: every architecture under the same load, one after another, each on a fresh
clone of the same dataset, into one results directory.

Per implementation: provision the clone and project its history; raise stock and vacuum (the
state autovacuum would long have reached); check its answers against the reference answers;
start its projector or refresher and (http transport) its API service as processes; start the collectors;
run Locust; take the statistics around the measurement window; let the projector catch up;
stop everything; reconcile the read models with the write model (drift marks the run); drop
the clone. Ctrl-C or a failing component stops every process, writes what was measured and marks
the run incomplete, naming the component and its log.
"""

from __future__ import annotations

import json
import os
import sys
import time
import urllib.request
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pandas as pd
import psycopg

from harness.analysis.load import Loaded, Run
from harness.analysis.report import write_report
from harness.collectors import capacity, storage
from harness.collectors import lag as lag_tables
from harness.collectors import replay as replay_tables
from harness.deploy import cpu_quota
from harness.deploy.components import Component, ComponentFailed
from harness.deploy.projector import ProjectorProcess, catch_up
from harness.deploy.provision import (
    RunDatabases,
    attached,
    drop,
    provision,
    ready_for_load,
    ready_template,
    run_databases,
)
from harness.deploy.refresher import INTERVAL, RefresherProcess, read_refreshes
from harness.deploy.service import SERVICE_WORKERS, ServiceProcess
from harness.postgres.server import free_port
from harness.postgres.servers import Servers, standby_dsn, standby_server
from harness.postgres.standby import StandbyBehind, set_feedback, wait_replayed
from harness.results import metadata
from harness.results.run_dir import (
    check_experiment,
    create_run_dir,
    empty_frame,
    finish_run_json,
    update_run_json,
    write_table,
)
from harness.results.schema import REPORT_DIR, TABLE_NAMES
from harness.runner import latency
from harness.runner.collect import RunCollectors, postmaster_pid
from harness.runner.progress import SecondsTail
from harness.runner.reconcile import reconcile
from harness.runner.summary import summary_table
from harness.runner.verify import verify
from implementations import registry
from implementations.interface import MAX_RETRIES, Projection
from workloads import dataset, spec
from workloads.catalog import Catalog
from workloads.config import WorkloadConfig
from workloads.recorder import merge_seconds
from workloads.spec import DASHBOARD_QUERIES

Progress = Callable[[str], None]
LOCUSTFILE = Path(__file__).resolve().parents[2] / "workloads" / "locustfile.py"
PROGRESS_EVERY = 5.0  # seconds between progress lines
CATCH_UP_BOUND = 60.0  # seconds the projector may take to apply what the load wrote
STOPPED_WITHIN = 5.0  # seconds for a standby that refused a connection to be seen stopped
WORKERS_WAIT = 120  # seconds a Locust master waits for its workers to connect


@dataclass(frozen=True)
class RunPlan:
    impls: list[str]
    mix: str = "mixed"
    shape: str = "steady"
    transport: str = "http"
    duration: float = 60.0
    warmup: float = 10.0
    sf: float = 1.0
    seed: int = 42
    arrival_rate: float | None = None
    experiment: str = "default"
    results_root: Path = Path("results")
    collectors: bool = True
    report: bool = True  # write report/report.md (charts, decision record) when complete
    pool_size: int = 16
    database: str | None = None  # an existing run database instead of a fresh clone
    service_url: str | None = None  # an API the run did not start (serving `database`)
    # worker processes of the service the run starts (http, no service_url); None: the default
    # there, and recorded as null where the run starts no service
    service_workers: int | None = None
    locust_workers: int = 0  # 0: one Locust process; N: a master and N workers
    external_workers: bool = False  # the N workers connect from elsewhere; none started here
    master_port: int | None = None  # where the master listens (default: a free port)
    repeat: int = 1  # rounds: every implementation once per round, the order reversed each round
    # set on the standby an architecture reads from: it then holds back the primary's vacuum for
    # its queries' snapshots (fewer recovery conflicts, more bloat on the primary)
    hot_standby_feedback: bool = False
    preset: str | None = None  # the named preset the options came from (recorded only)
    refresh_interval: float = INTERVAL  # seconds between a refresher's rounds of refreshes
    retries: int = MAX_RETRIES  # times a command is run again (serialization failure, deadlock)
    service_cpu_quota: float | None = None  # cores: the service in a CPU-quota cgroup of its own
    # architectures' own settings (run --set IMPL.NAME=VALUE): IMPL -> {NAME: VALUE}
    settings: dict[str, dict[str, int]] = field(default_factory=dict)

    def check(self) -> None:
        for name in self.impls:
            registry.check(name)
        if not self.impls:
            raise ValueError("--impl names no implementation")
        if twice := sorted({name for name in self.impls if self.impls.count(name) > 1}):
            raise ValueError(
                f"--impl names {', '.join(twice)} more than once: a run measures "
                "each implementation once (run again to measure it again)"
            )
        if isinstance(self.repeat, bool) or not isinstance(self.repeat, int) or self.repeat < 1:
            raise ValueError(f"--repeat must be a whole number >= 1, not {self.repeat!r}")
        if self.database and self.repeat > 1:
            raise ValueError(
                "--repeat needs fresh clones: an existing --database would be "
                "measured again after the first round changed it"
            )
        if self.database and len(self.impls) != 1:
            raise ValueError("--database names one implementation's database: give one --impl")
        if self.service_url and not self.database:
            raise ValueError("--service-url needs --database: the database that service uses")
        if self.service_url and self.transport != "http":
            raise ValueError("--service-url measures a service over HTTP: use --transport http")
        if self.external_workers and self.locust_workers < 1:
            raise ValueError("--external-workers needs --locust-workers N (how many will connect)")
        if self.external_workers and self.transport == "http" and not self.service_url:
            raise ValueError(
                "workers on other machines cannot reach a service this run starts "
                "on 127.0.0.1: serve it yourself and pass --service-url"
            )
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise ValueError(f"--retries must be a whole number >= 0, not {self.retries!r}")
        if self.service_cpu_quota is not None:
            if self.transport != "http" or self.service_url:
                raise ValueError(
                    "--service-cpu-quota limits the service the run starts: it needs "
                    "--transport http and no --service-url"
                )
            cpu_quota.check(self.service_cpu_quota)  # a one-line error when it cannot
        if not self.refresh_interval > 0:
            raise ValueError(f"--refresh-interval must be > 0, not {self.refresh_interval!r}")
        if self.transport not in ("http", "inproc"):
            raise ValueError("--transport must be http or inproc")
        mix = spec.load_mix(self.mix)
        if self.arrival_rate is not None:
            mix.check_open_loop()
        if self.service_workers is not None:
            self._check_service_workers(mix)
        spec.load_shape(self.shape)
        dataset.validate(self.sf, self.seed)
        check_experiment(self.experiment)

    def _check_service_workers(self, mix: spec.Mix) -> None:
        workers = self.service_workers
        if isinstance(workers, bool) or not isinstance(workers, int) or workers < 1:
            raise ValueError(f"--service-workers must be a whole number >= 1, not {workers!r}")
        if self.transport != "http" or self.service_url:
            raise ValueError(
                "--service-workers sets the service this run starts: it needs --transport http "
                "and no --service-url"
            )
        if workers > 1 and (reporting := mix.reporting()):
            raise ValueError(
                f"--service-workers {workers}: in mix {mix.name}, {', '.join(reporting)} run "
                "reports (report_s), transactions held by the one worker process that began "
                "them, which the other workers cannot serve; use --service-workers 1"
            )

    def started_service_workers(self) -> int | None:
        """The worker processes of the service this run starts (by default SERVICE_WORKERS, one
        for a mix that runs reports); None when it starts none."""
        if self.transport != "http" or self.service_url:
            return None
        if self.service_workers is not None:
            return self.service_workers
        return 1 if spec.load_mix(self.mix).reporting() else SERVICE_WORKERS


class Frames:
    """What the run measured so far, per table, written once at the end (also when interrupted)."""

    def __init__(self) -> None:
        self.parts: dict[str, list[pd.DataFrame]] = {}

    def add(self, impl: str, table: str, frame: pd.DataFrame | None) -> None:
        if frame is not None and len(frame):
            self.parts.setdefault(table, []).append(frame.assign(impl=impl))

    def table(self, name: str) -> pd.DataFrame:
        empty = empty_frame(name)
        parts = self.parts.get(name)
        if not parts:
            return empty
        frame = pd.concat(parts, ignore_index=True)
        return frame[list(empty.columns)].astype(empty.dtypes.to_dict())


def _ts(epoch: float) -> pd.Timestamp:
    return pd.Timestamp(epoch, unit="s", tz="UTC")


class ImplRun:
    """One implementation's turn: everything it starts, it stops."""

    def __init__(
        self,
        plan: RunPlan,
        servers: Servers,
        impl: str,
        run_dir: Path,
        frames: Frames,
        progress: Progress,
    ) -> None:
        self.plan, self.servers, self.impl, self.run_dir = plan, servers, impl, run_dir
        self.frames, self.progress = frames, progress
        self.raw = run_dir / "raw" / impl
        self.settings = plan.settings.get(impl, {})  # its own, as given (--set)
        self.logs = run_dir / "logs"
        self.components: list[Component] = []
        self.info: dict = {"status": "started", "warnings": [], "started": []}
        self.window: latency.Window | None = None
        self.projector: Component | None = None
        self.refresher: RefresherProcess | None = None
        # which view each dashboard operation reads (with a refresher)
        self.views: dict[str, str] = {}
        # an architecture reading a standby of the write server: its admin DSN
        self.standby = standby_dsn(servers) if registry.architecture(impl).reads_standby else None

    def log(self, component: str) -> Path:
        return self.logs / f"{self.impl}-{component}.log"

    def run(self) -> dict:
        plan = self.plan
        self.info["status"] = "incomplete"  # until it completes
        if plan.database:
            dbs = self._given_database(plan.database)
        else:
            self.progress(f"== {self.impl}: preparing a clone of sf={plan.sf:g} seed={plan.seed}")
            dbs = provision(
                self.impl, self.servers, sf=plan.sf, seed=plan.seed, progress=self.progress
            )
            self.info.update(database=dbs.name, database_origin="clone")
        try:
            if not plan.database:  # an existing database is not changed
                ready_for_load(dbs.write_dsn, dbs.read_dsn if dbs.separate else None)
            if self.standby:  # the explicit wait: verification reads the standby
                self._standby_replayed("standby_replayed_before_verification_s")
            with attached(self.impl, dbs, pool_size=2, settings=self.settings) as implementation:
                if running := implementation.settings():  # the given ones and the defaults
                    self.info["settings"] = running
                projection = implementation.projection
                if projection is not None:  # what preparing wrote (an event store: the stock
                    catch_up(projection)  # raise), applied before the projector's lag is measured
                self._verify(implementation, dbs.write_dsn)
                if implementation.refresher is not None:
                    reads = implementation.refresher.reads
                    self.views = {
                        op: reads[method]
                        for op, method in DASHBOARD_QUERIES.items()
                        if method in reads
                    }
            self._measure(dbs, projection)
        finally:
            self._stop_components()
            if not plan.database:
                drop(self.servers, dbs)
        self.info["status"] = "complete"
        return self.info

    def _standby_replayed(self, key: str) -> None:
        """Wait until the standby has replayed what the primary wrote so far (as long as its replay
        advances; CATCH_UP_BOUND s without replay fails it); record the wait."""
        try:
            seconds = wait_replayed(
                self.servers.write_dsn,
                self.standby,
                CATCH_UP_BOUND,
                alive=self._standby_alive,
                progress=self.progress,
            )
        except StandbyBehind as exc:
            raise ComponentFailed("standby", self._standby_log(), str(exc)) from None
        except psycopg.OperationalError:  # the standby, or the primary, went away
            self._check_standby(grace=STOPPED_WITHIN)
            raise
        self.info[key] = round(seconds, 3)

    def _standby_log(self) -> Path:
        server = standby_server(self.servers)
        return server.logfile if server else Path("(the given standby's own log)")

    def _standby_alive(self) -> bool:
        server = standby_server(self.servers)
        return server is None or self.servers.replica_dsn is not None or server.status().running

    def _check_standby(self, grace: float = 0.0) -> None:
        """ComponentFailed, naming its log, when the embedded standby stopped during the run, or
        is seen stopped within `grace` s (after a failed connection to it: a killed postmaster
        refuses connections a moment before its process is seen gone)."""
        if not self.standby:
            return
        deadline = time.monotonic() + grace
        while self._standby_alive():
            if time.monotonic() >= deadline:
                return
            time.sleep(0.1)
        raise ComponentFailed("standby", self._standby_log(), "stopped during the run")

    def _given_database(self, name: str) -> RunDatabases:
        dbs = run_databases(self.impl, self.servers, name)
        try:
            psycopg.connect(dbs.write_dsn, connect_timeout=10).close()
        except psycopg.OperationalError as exc:
            raise ValueError(
                f"cannot use database {name!r} on the write server: "
                f"{str(exc).strip().splitlines()[-1]}"
            ) from None
        self.progress(f"== {self.impl}: the existing database {name} (not cloned, not changed)")
        self.info.update(database=name, database_origin="given")
        return dbs

    def _stop_components(self) -> None:
        while self.components:
            component = self.components.pop()
            component.stop()
            if component.cpu_quota:  # the quota and how often it throttled the component
                quotas = self.info.setdefault("cpu_quota", {})
                quotas[component.name] = component.cpu_quota.record()

    def _verify(self, implementation, write_dsn: str) -> None:
        checks = verify(implementation, write_dsn, self.plan.seed)
        self.frames.add(self.impl, "verification", pd.DataFrame([asdict(c) for c in checks]))
        bad = [c for c in checks if not c.matched]
        self.info["verification"] = {"checks": len(checks), "mismatches": len(bad)}
        if bad:
            raise ComponentFailed(
                "verification",
                self.run_dir / "verification.parquet",
                f"found {len(bad)} answers that differ from the reference, "
                f"first: {bad[0].check}: {bad[0].detail}",
            )
        self.progress(f"   answers match the reference: {len(checks)} checks over every query type")

    def _start(self, component: Component) -> Component:
        if component.name == "service" and self.plan.service_cpu_quota:
            component.limit_cpu(self.plan.service_cpu_quota)
        self.components.append(component.start())
        self.info["started"].append(component.name)
        return component

    def _measure(self, dbs, projection: Projection | None) -> None:
        plan = self.plan
        self.raw.mkdir(parents=True, exist_ok=True)
        batches = self.raw / "projector-batches.jsonl"
        admin = {"write": self.servers.write_dsn}
        databases = {"write": dbs.write_dsn}
        if dbs.separate:
            admin["read"], databases["read"] = self.servers.read_dsn, dbs.read_dsn
        if self.standby:
            admin["standby"], databases["standby"] = self.standby, dbs.read_dsn
        self.server_dsns = admin
        collectors = None
        if plan.collectors:
            collectors = RunCollectors(
                servers=admin,
                databases=databases,
                projection=projection,
                warnings=self.info["warnings"],
                standby=(self.servers.write_dsn, dbs.read_dsn) if self.standby else None,
            )
            collectors.start()
            self.info["wait_sampler"] = collectors.wait_sampler
            self.info["wait_profile"] = collectors.wait_profile_note
        try:
            self._drive(dbs, projection, batches, collectors)
            if collectors:  # the load has stopped and the projection caught up
                for role, dsn in databases.items():
                    self.frames.add(self.impl, "storage", storage.sizes(dsn, role))
        finally:
            self._stop_components()  # their sessions close and flush their statistics
            self._collect_latency()
            if collectors:
                collectors.end_measure()
                for table, parts in collectors.stop().items():
                    for part in parts:
                        self.frames.add(self.impl, table, self._elapsed(table, part))
                if collectors.replay:
                    self._collect_replay(collectors.replay)
            if projection and batches.exists():
                self._collect_lag(batches)
            if self.refresher:
                self._collect_refreshes(self.refresher.record)
        if registry.architecture(self.impl).read_model != "write tables":
            # caught up, and no longer measured: its scans are in no statistics
            self._reconcile(dbs.write_dsn, dbs.read_dsn if dbs.separate else dbs.write_dsn)
        if collectors and collectors.failure:
            raise collectors.failure

    def _elapsed(self, table: str, part: pd.DataFrame) -> pd.DataFrame:
        """A lag frame with each sample's seconds since measuring began (the others unchanged)."""
        if table != "lag":
            return part
        start = _ts(self.window.start) if self.window else part["ts"].min()
        return part.assign(elapsed_s=(part["ts"] - start).dt.total_seconds())

    def _collect_replay(self, sampler: replay_tables.ReplaySampler) -> None:
        """The standby's per-commit replay lag, replay lag over time and per-query freshness."""
        tables = replay_tables.replay_tables(
            sampler.frame(), sampler.commits, SecondsTail(self.raw).queries()
        )
        if never := tables["event_lag"].attrs.get("never_replayed"):
            self.info["warnings"].append(f"{never} primary commits never seen replayed")
        for table, frame in tables.items():
            self.frames.add(self.impl, table, self._elapsed(table, frame))

    def _reconcile(self, write_dsn: str, read_dsn: str) -> None:
        """Every read-model row against the write model; drift marks the run, never fails it."""
        started = time.perf_counter()
        try:
            checks = reconcile(write_dsn, read_dsn)
        except psycopg.Error as exc:
            self.info["warnings"].append(f"read models not reconciled: {exc}")
            self.progress(f"   warning: read models not reconciled: {exc}")
            return
        seconds = time.perf_counter() - started
        self.frames.add(self.impl, "verification", pd.DataFrame([asdict(c) for c in checks]))
        bad = [c for c in checks if not c.matched]
        self.info["reconciliation"] = {
            "tables": len(checks),
            "mismatches": len(bad),
            "seconds": round(seconds, 3),
        }
        if bad:
            warning = (
                f"read models drifted from the write model: {', '.join(c.check for c in bad)}"
                f" (verification.parquet, phase after), first: {bad[0].detail}"
            )
            self.info["warnings"].append(warning)
            self.progress(f"   warning: {warning}")
        else:
            self.progress(
                f"   read models match the write model: {len(checks)} tables "
                f"reconciled in {seconds:.1f}s"
            )

    def _drive(self, dbs, projection, batches: Path, collectors: RunCollectors | None) -> None:
        plan = self.plan
        self.info["projector"] = (
            "none" if not projection else ("external" if plan.service_url else "started")
        )
        if projection and plan.service_url:
            self.progress("   the projector is the deployment's own: its lag is not recorded")
        if self.views:
            self.info["refresher"] = "external" if plan.service_url else "started"
        if self.views and not plan.service_url:
            self.refresher = self._start(
                RefresherProcess(
                    self.impl,
                    (dbs.write_dsn, dbs.read_dsn),
                    self.log("refresher"),
                    record=self.raw / "refreshes.jsonl",
                    interval=plan.refresh_interval,
                )
            )
            if collectors:
                collectors.add_component("refresher", self.refresher.pid)
        if projection and not plan.service_url:
            self.projector = projector = self._start(
                ProjectorProcess(
                    self.impl,
                    dbs.write_dsn,
                    dbs.read_dsn,
                    self.log("projector"),
                    record_lag=batches if plan.collectors else None,
                )
            )
            if collectors:
                collectors.add_component("projector", projector.pid)
        host = None
        if plan.service_url:
            host = plan.service_url.rstrip("/")
            self._check_service(host)
        elif plan.transport == "http":
            service = self._start(
                ServiceProcess(
                    self.impl,
                    self.servers,
                    dbs.name,
                    self.log("service"),
                    plan.retries,
                    workers=plan.started_service_workers(),
                    settings=self.settings,
                )
            )
            host = service.url
            service.wait_healthy()
            if collectors:
                collectors.add_component("service", service.pid)
            self.info.update(service=host, service_origin="started")
        if self.projector:
            self.projector.wait_active()
        if self.refresher:
            self.refresher.wait_active()
        if self.standby:
            self.info["hot_standby_feedback"] = set_feedback(
                self.standby, plan.hot_standby_feedback
            )
            self._standby_replayed("standby_replayed_before_load_s")
            self.progress(
                f"   the standby has replayed the primary (hot_standby_feedback "
                f"{'on' if self.info['hot_standby_feedback'] else 'off'})"
            )
        config = WorkloadConfig(
            transport=plan.transport,
            host=host,
            impl=self.impl,
            write_dsn=dbs.write_dsn,
            read_dsn=dbs.read_dsn,
            mix=plan.mix,
            shape=plan.shape,
            seed=plan.seed,
            duration_s=plan.duration,
            warmup_s=plan.warmup,
            arrival_rate=plan.arrival_rate,
            catalog=Catalog.from_database(dbs.write_dsn).to_dict(),
            out_dir=str(self.raw),
            pool_size=plan.pool_size,
            retries=plan.retries,
            settings=self.settings,
        )
        config_path = self.raw / "workload.json"
        config_path.write_text(config.to_json())
        (self.run_dir / "locust").mkdir(exist_ok=True)
        locust = self._start_locust(config_path, collectors)
        self._record_capacity()
        self._watch(locust, collectors)
        if self.standby:  # as a projector's catch-up: what the load wrote, replayed
            self._standby_replayed("standby_caught_up_s")
        if projection:
            caught_up = projection.wait_caught_up(
                timeout=CATCH_UP_BOUND,
                alive=self.projector.running if self.projector else lambda: True,
            )
            if caught_up is None:
                raise ComponentFailed(
                    "projector",
                    self.log("projector"),
                    f"did not catch up within {CATCH_UP_BOUND:.0f}s of the load's end",
                )
            self.info["projector_caught_up_s"] = round(caught_up, 3)

    def _record_capacity(self) -> None:
        """run.json's `cpu_capacity`: the cores each component it started, each server on this
        machine and the machine could use (harness/collectors/capacity.py)."""
        workers = self.plan.started_service_workers() or 1
        python = {
            "service": (workers, f"{workers} worker process{'es' * (workers > 1)} (GIL)"),
        }
        components = {
            f"{role}_server": (pid, None, "")
            for role, dsn in self.server_dsns.items()
            if (pid := postmaster_pid(dsn))
        }
        for component in self.components:
            processes, what = python.get(component.name, (1, "one Python process (GIL)"))
            components[component.name.replace("-", "_")] = (component.pid, processes, what)
        components["runner"] = (os.getpid(), 1, "one Python process (GIL)")
        self.info["cpu_capacity"] = capacity.capacities(components)

    def _check_service(self, url: str) -> None:
        """The given service answers /health and serves this implementation."""
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=10) as response:
                health = json.loads(response.read())
        except (OSError, ValueError) as exc:
            raise ValueError(f"no service answers at {url}/health: {exc}") from None
        if health.get("implementation") != self.impl:
            raise ValueError(
                f"the service at {url} serves {health.get('implementation')!r}, not {self.impl!r}"
            )
        self.info.update(service=url, service_origin="given")

    def _start_locust(self, config_path: Path, collectors: RunCollectors | None) -> Component:
        """Locust alone, or a master with `locust_workers` workers (started here unless they
        connect from elsewhere); its users: as many as the mix and shape need."""
        plan = self.plan
        command = [
            sys.executable,
            "-m",
            "locust",
            "-f",
            str(LOCUSTFILE),
            "--headless",
            "--run-time",
            f"{int(plan.warmup + plan.duration + 2)}s",
            "--stop-timeout",
            "10",
            "--csv",
            str(self.run_dir / "locust" / self.impl),
            "--csv-full-history",
            "--exit-code-on-error",
            "0",
            "--cqrs-config",
            str(config_path),
            "--loglevel",
            "WARNING",
        ]
        port = plan.master_port or free_port()
        if plan.locust_workers:
            command += [
                "--master",
                "--master-bind-host",
                "0.0.0.0" if plan.external_workers else "127.0.0.1",
                "--expect-workers",
                str(plan.locust_workers),
                "--expect-workers-max-wait",
                str(WORKERS_WAIT),
                "--master-bind-port",
                str(port),
            ]
        locust = self._start(Component("locust", command, self.log("locust")))
        if collectors:
            collectors.add_component("locust", locust.pid)
        if plan.external_workers:
            self.progress(
                f"   waiting for {plan.locust_workers} Locust workers on port {port}: "
                f"locust -f workloads/locustfile.py --worker --master-host HOST "
                f"--master-port {port}"
            )
        else:
            for i in range(plan.locust_workers):
                name = f"locust-worker-{i + 1}"
                worker = self._start(
                    Component(
                        name,
                        [
                            sys.executable,
                            "-m",
                            "locust",
                            "-f",
                            str(LOCUSTFILE),
                            "--worker",
                            "--master-host",
                            "127.0.0.1",
                            "--master-port",
                            str(port),
                            "--loglevel",
                            "WARNING",
                        ],
                        self.log(name),
                    )
                )
                if collectors:
                    collectors.add_component(f"locust_worker_{i + 1}", worker.pid)
        self.info["locust"] = {
            "workers": plan.locust_workers,
            "external": plan.external_workers,
            "master_port": port if plan.locust_workers else None,
        }
        return locust

    def _watch(self, locust: Component, collectors: RunCollectors | None) -> None:
        plan = self.plan
        tail = SecondsTail(self.raw)
        limit = time.monotonic() + plan.warmup + plan.duration + 120
        if plan.locust_workers:
            limit += WORKERS_WAIT
        measuring, last_report = False, 0.0
        while locust.running():
            for component in self.components:
                if component.name.startswith("locust-worker"):  # they leave with the master
                    if not component.running() and component.proc.returncode != 0:
                        component.check()
                elif component is not locust:
                    component.check()
            self._check_standby()
            if collectors:
                self._sampling(collectors.check)
            tail.poll()
            now = time.time()
            if tail.start and not measuring and now >= tail.start + plan.warmup:
                measuring = True
                if collectors:
                    self._sampling(collectors.begin_measure)
            if tail.start and now - last_report >= PROGRESS_EVERY:
                last_report = now
                self.progress(
                    tail.line(
                        self.impl,
                        plan.warmup,
                        plan.duration,
                        collectors.lag_now() if collectors else None,
                    )
                )
            if time.monotonic() > limit:
                raise ComponentFailed("locust", locust.log, "ran past its run time")
            time.sleep(0.5)
        if locust.proc.returncode != 0:
            raise ComponentFailed(
                "locust", locust.log, f"exited with code {locust.proc.returncode}"
            )
        tail.poll()
        if tail.start is None:
            raise ComponentFailed("locust", locust.log, "recorded no requests")
        self.window = latency.Window(tail.start, plan.warmup, plan.duration)

    def _sampling(self, action: Callable[[], None]) -> None:
        """`action` on the collectors; when it fails because the standby has just gone (a sampler
        that died, or a connection refused), the standby is the failure named."""
        try:
            action()
        except (ComponentFailed, psycopg.OperationalError):
            self._check_standby(grace=STOPPED_WITHIN)
            raise

    def _collect_latency(self) -> None:
        files = sorted(self.raw.glob("seconds-*.jsonl"))
        if not files:
            return
        if self.window is None:  # interrupted during the load: phases from the first request
            start = SecondsTail(self.raw).first_second()
            if start is None:
                return
            self.window = latency.Window(start, self.plan.warmup, self.plan.duration)
        for table, frame in latency.tables(merge_seconds(files), self.window).items():
            self.frames.add(self.impl, table, frame)

    def _collect_lag(self, batches: Path) -> None:
        events = lag_tables.event_lag(lag_tables.read_batches(batches))
        self.frames.add(self.impl, "event_lag", events)
        queries = SecondsTail(self.raw).queries()
        self.frames.add(self.impl, "freshness", lag_tables.freshness(events, queries))

    def _collect_refreshes(self, records: Path) -> None:
        """Every refresh the refresher recorded, and the freshness of every dashboard query."""
        refreshed = lag_tables.refreshes(read_refreshes(records))
        if not len(refreshed):
            return
        start = self.window.start if self.window else refreshed["started_at"].min().timestamp()
        window = self.window or latency.Window(start, self.plan.warmup, self.plan.duration)
        phases = [window.phase(t.timestamp()) for t in refreshed["started_at"]]
        self.frames.add(self.impl, "refreshes", refreshed.assign(phase=phases))
        if self.plan.collectors:
            queries = SecondsTail(self.raw).queries()
            fresh = lag_tables.view_freshness(refreshed, queries, self.views)
            self.frames.add(self.impl, "freshness", fresh)


def run(plan: RunPlan, servers: Servers, progress: Progress = print) -> list[Path]:
    """Measure every implementation of `plan`, `plan.repeat` rounds (each its own results
    directory, the order of the implementations reversed every other round, so drift in the
    machine's conditions does not always favour the same one); the directories it wrote. The
    last one's report covers every round, and the answer pools them."""
    plan.check()
    if not plan.database:
        _ready_templates(plan, servers, progress)
    rounds: list[Loaded] = []
    for number in range(1, plan.repeat + 1):
        order = plan.impls if number % 2 else plan.impls[::-1]
        if plan.repeat > 1:
            progress(f"=== round {number}/{plan.repeat}: {', '.join(order)}")
        rounds.append(_round(plan, servers, order, number, progress))
    dirs = [data.runs[0].path for data in rounds]
    if plan.report:  # one round: what its summary computed; several: their runs, pooled
        data = rounds[0] if len(rounds) == 1 else Loaded([r for one in rounds for r in one.runs])
        report = write_report(data, dirs[-1] / REPORT_DIR)
        if plan.repeat > 1:
            summary = summary_table(data)
            (report.parent / "summary.txt").write_text(summary + "\n")
            progress(f"every round together:\n{summary}")
        progress(f"report: {report} (and report.html)")
    return dirs


def _ready_templates(plan: RunPlan, servers: Servers, progress: Progress) -> None:
    """Every implementation's ready template, before anything is measured, two builds at a time
    (a build is mostly one projector process and one server backend, so two share 2 cores)."""
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=2) as pool:
        futures = [
            pool.submit(
                ready_template, impl, servers, sf=plan.sf, seed=plan.seed, progress=progress
            )
            for impl in plan.impls
        ]
        for future in futures:
            future.result()
    progress(f"templates ready in {time.perf_counter() - started:.1f}s")


def _round(
    plan: RunPlan, servers: Servers, order: list[str], number: int, progress: Progress
) -> Loaded:
    """One round: every implementation in `order`, into a new results directory; its run,
    loaded."""
    run_dir = create_run_dir(plan.results_root, plan.experiment)
    progress(f"results: {run_dir}")
    config = {
        **asdict(plan),
        "service_workers": plan.started_service_workers(),
        "results_root": str(plan.results_root),
        "round": number,
        "order": order,
        # the mix as read (per class: users, think times, tasks, isolation, report_s)
        "mix_spec": spec.load_mix(plan.mix).as_dict(),
    }
    metadata.run_metadata(run_dir, config, servers)
    frames, impls = Frames(), {}
    outcome: dict = {
        "status": "incomplete",
        "incomplete_reason": "interrupted",
        "failed_component": None,
        "failed_log": None,
    }
    try:
        for name in order:
            turn = ImplRun(plan, servers, name, run_dir, frames, progress)
            impls[name] = turn
            turn.run()
        outcome = {"status": "complete"}
    except ComponentFailed as exc:
        outcome.update(
            incomplete_reason=str(exc), failed_component=exc.component, failed_log=str(exc.log)
        )
        raise
    except (KeyboardInterrupt, SystemExit):
        raise
    except BaseException as exc:
        outcome["incomplete_reason"] = f"{type(exc).__name__}: {exc}"
        raise
    finally:
        data = _finish(run_dir, frames, impls, outcome, progress)
    if outcome["status"] != "complete":
        raise ValueError(f"the run's results are incomplete: {outcome['incomplete_reason']}")
    return data


def _finish(
    run_dir: Path, frames: Frames, turns: dict[str, ImplRun], outcome: dict, progress: Progress
) -> Loaded:
    """Write every table, the summary and the final run.json, whatever happened before; the run,
    loaded (its tables read back once, for the summary and the report)."""
    unwritten = []
    for name in TABLE_NAMES:
        try:
            write_table(run_dir, name, frames.table(name))
        except Exception as exc:  # noqa: BLE001 - the others are still written
            unwritten.append(f"{name}: {exc}")
    if unwritten and outcome["status"] == "complete":  # in place: run() raises after it
        outcome.update(
            status="incomplete",
            failed_component="results",
            failed_log=None,
            incomplete_reason="not written: " + "; ".join(unwritten),
        )
    update_run_json(run_dir, {"impls": {n: t.info for n, t in turns.items()}})
    data = Loaded([Run(run_dir, finish_run_json(run_dir, **outcome))])
    summary = summary_table(data, partial=outcome["status"] != "complete")
    (run_dir / "summary.txt").write_text(summary + "\n")
    progress(summary)
    progress(f"results ({outcome['status']}): {run_dir}")
    for problem in unwritten:
        progress(f"error: not written: {problem}")
    return data
