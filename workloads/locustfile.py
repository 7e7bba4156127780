"""The cqrs-bench workload for Locust.

    locust -f workloads/locustfile.py --headless --run-time 60s --cqrs-config run.json
    locust -f workloads/locustfile.py --host http://127.0.0.1:8000 --mix mixed --shape steady \\
        --seed 42 --catalog-dsn postgresql://...
    locust -f workloads/locustfile.py --master --headless --expect-workers 2 ... --cqrs-config run.json
    locust -f workloads/locustfile.py --worker --master-host HOST   (x 2; needs no option of its own)

The user counts come from the mix and shape (Locust's -u is set to their sum; spawn rate: all at
once unless -r is given). Closed loop: each class spawns as many users as its shape ever wants;
a user whose index is at or above its class's current target idles. Open loop (arrival_rate):
one scheduler user per class and process (--expect-workers on a master), each sending its share
of the class's rate. Results: workloads/recorder.py's files in the output directory (the
master's, with workers: workloads/distributed.py says what travels between the processes); each
second's line also counts the users of each class that were acting (`active_users`).
"""

from __future__ import annotations

import logging
import sys
import time
from dataclasses import dataclass, field, replace
from random import Random

import gevent
import psycopg
from gevent.event import Event
from locust import User, constant, events, task
from locust.exception import StopUser

from implementations import registry
from workloads import distributed
from workloads.catalog import Catalog
from workloads.config import TRANSPORTS, WorkloadConfig
from workloads.openloop import OpenLoop
from workloads.recorder import Recorder
from workloads.spec import USER_CLASSES, Mix, Shape, load_mix, load_shape
from workloads.transports import Transport, create_transport
from workloads.users import Actor, OperationError, Planner, Popularity

IDLE_S = 0.1
STOP_GRACE_S = 5.0  # Locust's --stop-timeout when not given: requests in flight are not cut
DEFAULT_DURATION_S = 600.0  # shapes' time base when neither --duration nor --run-time is given
log = logging.getLogger("cqrs-bench")


@events.init_command_line_parser.add_listener
def _options(parser) -> None:
    def option(*names, **kwargs) -> None:
        parser.add_argument(*names, include_in_web_ui=False, **kwargs)

    option(
        "--cqrs-config",
        default="",
        help="a workload config JSON file (workloads/config.py); the options below are ignored",
    )
    option("--transport", choices=TRANSPORTS, default="http")
    option("--impl", default=registry.baseline(), help="inproc: the implementation to drive")
    option("--write-dsn", default=None, help="inproc: the implementation's write database")
    option("--read-dsn", default=None, help="inproc: its read database (default: write)")
    option("--pool-size", type=int, default=16, help="inproc: connections per engine")
    option(
        "--retries",
        type=int,
        default=5,
        help="inproc: retries of a command after a serialization failure or deadlock",
    )
    option("--mix", default="mixed", help="mix name or .toml path")
    option("--shape", default="steady", help="shape name or .toml path")
    option("--seed", type=int, default=42)
    option(
        "--duration",
        type=float,
        default=None,
        help="measured seconds the shape spans, after --warmup (default: --run-time less "
        "--warmup, else 600)",
    )
    option(
        "--warmup",
        type=float,
        default=0.0,
        help="seconds of warm-up before the shape's first stage (at its levels, every class "
        "present)",
    )
    option(
        "--arrival-rate",
        type=float,
        default=None,
        help="open loop: total arrivals per second (default: closed loop)",
    )
    option("--max-in-flight", type=int, default=256, help="open loop: cap on requests in flight")
    option(
        "--catalog-dsn",
        default=None,
        help="write-model database to read customers/products from (inproc: --write-dsn)",
    )
    option("--out-dir", default="locust-out", help="where the per-second results go")


def config_from_options(options) -> WorkloadConfig:
    if options.cqrs_config:
        return WorkloadConfig.load(options.cqrs_config)
    return WorkloadConfig(
        transport=options.transport,
        impl=options.impl,
        write_dsn=options.write_dsn,
        read_dsn=options.read_dsn,
        pool_size=options.pool_size,
        retries=options.retries,
        mix=options.mix,
        shape=options.shape,
        seed=options.seed,
        duration_s=options.duration
        or (options.run_time - options.warmup if options.run_time else DEFAULT_DURATION_S),
        warmup_s=options.warmup,
        arrival_rate=options.arrival_rate,
        max_in_flight=options.max_in_flight,
        catalog_dsn=options.catalog_dsn,
        out_dir=options.out_dir,
    )


@dataclass
class Run:
    config: WorkloadConfig
    mix: Mix
    shape: Shape
    catalog: Catalog | None = None  # None on a distributed master (it runs no users)
    popularity: Popularity | None = None
    recorder: Recorder | None = None
    transport: Transport | None = None
    openloop: OpenLoop | None = None
    open_rates: dict[str, float] = field(default_factory=dict)  # per class, before the shape
    started: float = field(default_factory=time.perf_counter)
    indices: dict[str, int] = field(default_factory=dict)
    totals: dict[str, int] = field(default_factory=dict)  # users per class in all processes
    places: dict[str, list[int]] | None = None  # a worker's: class -> [offset, n] (master's plan)
    worker: int = -1  # a worker's index
    payload: str = ""  # worker: what it was built from
    stopping: Event = field(default_factory=Event)  # set: users end after their request

    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def shape_elapsed(self) -> float:
        """Seconds into the shape's measured window (negative during the warm-up)."""
        return self.elapsed() - self.config.warmup_s

    def target(self, user_class: str) -> int:
        return self.shape.target(
            self.mix, user_class, self.shape_elapsed(), self.config.duration_s, self.config.warmup_s
        )

    def open_rate(self, user_class: str) -> float:
        return self.open_rates.get(user_class, 0.0) * self.shape.rate_factor(
            self.mix, user_class, self.shape_elapsed(), self.config.duration_s, self.config.warmup_s
        )

    def next_index(self, user_class: str) -> int:
        """The class's next user's index over all processes (a worker's users: from its offset)."""
        local = self.indices.get(user_class, 0)
        self.indices[user_class] = local + 1
        if self.places is None:
            return local
        offset, count = self.places.get(user_class, (0, 0))
        if local < count:
            return offset + local
        index = self.totals.get(user_class, 0) + 1000 * (self.worker + 1) + local  # still unique
        log.warning(
            "worker %d: a %s the master did not plan for: index %d (not reproducible)",
            self.worker,
            user_class,
            index,
        )
        return index

    def open_share(self, user_class: str) -> float:
        """Open loop: one scheduler's rate (the class's rate over its schedulers everywhere)."""
        return self.open_rate(user_class) / max(self.totals.get(user_class, 1), 1)


RUN: Run | None = None


def open_rates(config: WorkloadConfig, mix: Mix) -> dict[str, float]:
    """The total arrival rate split across classes by the mix's rates (else by its user counts)."""
    shares = {name: mix.rate(name) for name in USER_CLASSES}
    if not sum(shares.values()):
        shares = {name: float(mix.count(name)) for name in USER_CLASSES}
    total = sum(shares.values())
    return {name: config.arrival_rate * share / total for name, share in shares.items() if share}


def plan(config: WorkloadConfig, processes: int = 1) -> Run:
    """The run and its users per class over all `processes` (open loop: one scheduler each)."""
    run = Run(config, load_mix(config.mix), load_shape(config.shape))
    if config.arrival_rate is not None:
        run.mix.check_open_loop()
        run.open_rates = open_rates(config, run.mix)
        run.totals = {name: processes * int(name in run.open_rates) for name in USER_CLASSES}
    else:
        run.totals = {name: run.shape.peak(run.mix, name) for name in USER_CLASSES}
    return run


def prepare(environment) -> Run | None:
    """At init: a local run, or a master's plan; None on a worker (built at test start)."""
    role = distributed.role(environment)
    if role == "worker":
        distributed.Worker(environment, lambda: RUN.recorder if RUN is not None else None)
        return None
    config = config_from_options(environment.parsed_options)
    if role == "master" and config.catalog is None:  # the same catalog for every worker
        config = replace(config, catalog=Catalog.from_database(config.catalog_source).to_dict())
    run = plan(config, environment.parsed_options.expect_workers if role == "master" else 1)
    for cls in WORKLOAD_USERS:
        cls.fixed_count = run.totals[cls.__name__]
    _set_user_count(environment.parsed_options, sum(run.totals.values()))
    if not environment.stop_timeout:  # sent on to workers in the spawn messages
        environment.stop_timeout = STOP_GRACE_S
    if role == "master":
        environment.parsed_options.cqrs_payload = distributed.payload(
            config.to_json(), run.mix.path, run.shape.path
        )
        distributed.Master(environment, config.out_dir)
        return run
    return build(run, environment, config.out_dir)


def prepare_worker(environment, previous: Run | None) -> Run:
    """At test start on a worker: the master's config, mix and shape (built once per payload),
    and this worker's places in the master's layout."""
    options = environment.parsed_options
    payload = getattr(options, "cqrs_payload", "")
    if not payload:
        raise ValueError("the master sent no workload (does it run workloads/locustfile.py?)")
    run = previous
    if run is None or run.payload != payload:
        if run is not None and run.recorder is not None:
            environment.events.request.remove_listener(run.recorder.on_request)
            run.recorder.stop()
        text, mix_path, shape_path = distributed.unpack(payload)
        config = replace(WorkloadConfig.from_json(text), mix=mix_path, shape=shape_path)
        run = build(plan(config), environment, None)
        run.recorder.start()  # lines each second (users counted each second), taken on reports
        run.payload = payload
    layout = getattr(options, "cqrs_layout", None) or {}
    run.places = layout.get(environment.runner.client_id, {})
    run.worker = environment.runner.worker_index
    run.totals = {
        name: sum(p.get(name, [0, 0])[1] for p in layout.values()) for name in USER_CLASSES
    }
    return run


def build(run: Run, environment, out_dir: str | None) -> Run:
    """Catalog, transport and recorder of a process that runs users (out_dir None: a worker)."""
    config = run.config
    run.catalog = (
        Catalog.from_dict(config.catalog)
        if config.catalog is not None
        else Catalog.from_database(config.catalog_source)
    )
    run.popularity = Popularity(run.catalog.products, config.seed)
    for name in USER_CLASSES:  # fail now, not in a user greenlet, when the catalog lacks something
        if name in run.mix.classes:
            Planner(run.mix.classes[name], run.catalog, run.popularity, config.seed, 0)
    run.transport = create_transport(config, environment)
    run.recorder = Recorder(out_dir, users=lambda: active_users(environment, run))
    environment.events.request.add_listener(run.recorder.on_request)
    if config.arrival_rate is not None:
        run.openloop = OpenLoop(config.max_in_flight, run.recorder)
    return run


def active_users(environment, run: Run) -> dict[str, int]:
    """Per class of the mix, this process's users acting now: spawned by Locust (the users its
    runner holds) and let act by the shape (closed loop: index below the class's target; open
    loop: the class's schedulers while its rate is above 0)."""
    indices: dict[str, list[int]] = {name: [] for name in USER_CLASSES if name in run.mix.classes}
    runner = environment.runner
    for greenlet in list(runner.user_greenlets) if runner is not None else []:
        user = greenlet.args[0] if greenlet.args else None  # a dead greenlet has no args
        name = type(user).__name__
        if name in indices and getattr(user, "index", None) is not None:  # past on_start
            indices[name].append(user.index)
    counts = {}
    for name, held in indices.items():
        if run.openloop is not None:
            counts[name] = len(held) if run.open_rate(name) > 0 else 0
        else:
            target = run.target(name)
            counts[name] = sum(index < target for index in held)
    return counts


def _set_user_count(options, total: int) -> None:
    if options.num_users not in (None, total):
        log.warning("the mix and shape need %d users; ignoring -u %s", total, options.num_users)
    options.num_users = total
    if options.spawn_rate is None:
        options.spawn_rate = max(total, 1)


@events.init.add_listener
def _on_init(environment, **_kwargs) -> None:
    global RUN
    try:
        RUN = prepare(environment)
    except (ValueError, OSError, psycopg.Error) as exc:
        log.error("cqrs-bench workload: %s", exc)
        sys.exit(1)
    if RUN is None:
        return
    if RUN.recorder is not None:
        RUN.recorder.start()
    log.info(
        "cqrs-bench workload: %s transport, mix %s, shape %s, seed %d, %s",
        RUN.config.transport,
        RUN.mix.name,
        RUN.shape.name,
        RUN.config.seed,
        f"open loop at {RUN.config.arrival_rate}/s" if RUN.open_rates else "closed loop",
    )


@events.test_start.add_listener
def _on_test_start(environment, **_kwargs) -> None:
    global RUN
    if distributed.role(environment) == "worker":
        try:
            RUN = prepare_worker(environment, RUN)
        except (ValueError, OSError, psycopg.Error) as exc:
            log.error("cqrs-bench workload: %s", exc)
            environment.process_exit_code = 1
            gevent.spawn(environment.runner.quit)
            return
    if RUN is None or RUN.transport is None:
        return
    RUN.started, RUN.indices, RUN.stopping = time.perf_counter(), {}, Event()
    if RUN.openloop is not None:
        RUN.openloop.halted.clear()
    RUN.transport.start()


@events.test_stopping.add_listener
def _on_test_stopping(environment, **_kwargs) -> None:
    """Before Locust stops the users. A kill that lands in a database call can come out of
    SQLAlchemy's cleanup as an ordinary error (a failed request that never failed) and the user
    carry on while Locust waits for it: so the stop is graceful (STOP_GRACE_S, unless
    --stop-timeout says otherwise) and users end themselves after their current request.
    """
    if RUN is not None:
        RUN.stopping.set()
        if RUN.recorder is not None:  # the last seconds count the users that ran in them
            RUN.recorder.hold_users()
        if RUN.openloop is not None:
            RUN.openloop.halt()


@events.test_stop.add_listener
def _on_test_stop(environment, **_kwargs) -> None:
    if RUN is None or RUN.transport is None:
        return
    if RUN.openloop is not None:
        RUN.openloop.stop()
    RUN.recorder.flush(everything=True)
    RUN.recorder.release_users()
    RUN.transport.stop()


@events.quitting.add_listener
def _on_quitting(environment, **_kwargs) -> None:
    if RUN is not None and RUN.recorder is not None:
        RUN.recorder.stop()


class WorkloadUser(User):
    """A user of one class; its index within the class picks its seed and its place in the shape."""

    abstract = True
    wait_time = constant(0)  # think time is drawn from the user's own seeded rng in `step`

    def on_start(self) -> None:
        run, name = RUN, type(self).__name__
        self.index = run.next_index(name)
        self.spec = run.mix.classes.get(name)
        if self.spec is None:
            return
        seed = run.config.seed
        concurrency = run.config.max_in_flight if run.openloop else 2
        self.client = run.transport.client(
            concurrency,
            self.spec.isolation,
            report=bool(self.spec.report_s),
            # checkout is the measured path: only the other classes pay for naming themselves
            role=None if name == "Shopper" else name.lower(),
        )
        self.report_ends = time.monotonic() + self.spec.report_s
        self.actor = Actor(self.client, run.recorder, sleep=gevent.sleep)
        self.planner = Planner(self.spec, run.catalog, run.popularity, seed, self.index)
        self.think = Random(f"{seed}-{name}-{self.index}-think")

    @task
    def step(self) -> None:
        name = type(self).__name__
        if RUN.stopping.is_set():
            raise StopUser()
        if self.spec is None:
            gevent.sleep(IDLE_S)
        elif RUN.openloop is not None:  # scheduler 0 keeps the one-process arrivals
            arrivals = f"{RUN.config.seed}-{name}-arrivals" + (
                f"-{self.index}" if self.index else ""
            )
            RUN.openloop.run(
                lambda: RUN.open_share(name),
                Random(arrivals),
                self.planner.next,
                self.actor.perform,
            )
        elif RUN.target(name) <= self.index:
            self.end_report()  # an idle user holds no snapshot
            gevent.sleep(IDLE_S)
        else:
            if self.spec.report_s and time.monotonic() >= self.report_ends:
                self.end_report()
            self.actor.perform(self.planner.next())
            low, high = self.spec.think_min_s, self.spec.think_max_s
            if RUN.stopping.wait(low + (high - low) * self.think.random()):
                raise StopUser()

    def end_report(self) -> None:
        """End the report this user's queries run in, if any (the next query begins the next,
        held for the class's report_s)."""
        if self.spec is not None and self.spec.report_s:
            self.report_ends = time.monotonic() + self.spec.report_s
            try:
                self.client.end_report()
            except OperationError as exc:
                log.warning("%s %d: ending its report: %s", type(self).__name__, self.index, exc)

    def on_stop(self) -> None:
        self.end_report()


class Shopper(WorkloadUser):
    pass


class Analyst(WorkloadUser):
    pass


class Merchandiser(WorkloadUser):
    pass


class Prober(WorkloadUser):
    pass


WORKLOAD_USERS = (Shopper, Analyst, Merchandiser, Prober)
