"""`cqrs-bench run`: the main job, every architecture under the same Locust load."""

from __future__ import annotations

import signal
import tempfile
from pathlib import Path

import typer

from harness.cli.options import ReadDsn, ReplicaDsn, Seed, Settings, WriteDsn
from harness.deploy.refresher import INTERVAL
from harness.deploy.service import SERVICE_WORKERS
from harness.postgres.servers import require_lasting_servers, use_servers
from harness.runner import presets
from harness.runner.run import RunPlan
from harness.runner.run import run as run_plan
from implementations import registry
from implementations.interface import MAX_RETRIES
from workloads import spec


def default_results() -> Path:
    """results/ of this checkout, else of the current directory."""
    checkout = Path(__file__).resolve().parents[2]
    return (checkout if (checkout / "pyproject.toml").is_file() else Path.cwd()) / "results"


def check_results(folder: Path) -> None:
    """ValueError unless the run's results can go into `folder` (made if missing): its nearest
    existing folder is probed by making a directory in it (root ignores permission bits, not a
    read-only file system), so a bad --results is refused before anything starts."""
    existing = next(p for p in (folder, *folder.parents) if p.exists())
    if not existing.is_dir():
        raise ValueError(f"--results: cannot make {folder}: {existing} is not a directory")
    try:
        tempfile.TemporaryDirectory(dir=existing, prefix=".cqrs-bench-probe-").cleanup()
    except OSError as exc:
        raise ValueError(
            f"--results: cannot make {folder}: cannot write in {existing} ({exc.strerror})"
        ) from None


STOPPING = "stopping: Ctrl-C received; stopping every process and writing what was measured"


def _stopping(_signum, _frame) -> None:
    """Say at once that the run is stopping, then stop as Ctrl-C does (a second one too)."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    typer.echo(STOPPING)
    raise KeyboardInterrupt


def run(
    impl: str | None = typer.Option(
        None,
        "--impl",
        show_default=False,
        help="Implementations to measure, comma-separated, in this order; default: the preset's "
        f"(interference and quick: {', '.join(registry.default_run())}; every-architecture: "
        "all of them).",
    ),
    preset: str = typer.Option(
        presets.DEFAULT,
        help=f"Named options: {', '.join(presets.PRESETS)}. interference: sf 1, "
        "dashboard-heavy mix, analysts 0, 4, 8, 16 within the measured window, 10 s warm-up + 40 s "
        "measured per architecture, on the architectures measured by default; "
        "every-architecture: the same on every architecture; quick: a light mixed load on sf 0.2 "
        "(checks that everything works, too light to tell the architectures apart). Options given "
        "here win.",
    ),
    mix: str | None = typer.Option(
        None,
        show_default=False,
        help=f"Workload mix: "
        f"{', '.join(spec.mix_names())}, or a TOML file (default: the preset's).",
    ),
    shape: str | None = typer.Option(
        None,
        show_default=False,
        help=f"Load shape: "
        f"{', '.join(spec.shape_names())}, or a TOML file (default: the preset's).",
    ),
    transport: str = typer.Option(
        "http",
        help="http: Locust drives the API service over HTTP; "
        "inproc: Locust calls the implementation in its own process.",
    ),
    duration: float | None = typer.Option(
        None,
        min=1,
        show_default=False,
        help="Seconds measured "
        "per implementation, after the warm-up; the shape's "
        "stages divide it (default: the preset's).",
    ),
    warmup: float | None = typer.Option(
        None,
        min=0,
        show_default=False,
        help="Seconds of load "
        "before measuring: its first half runs every user class "
        "(warm caches), its second the shape's first stage "
        "(default: the preset's).",
    ),
    sf: float | None = typer.Option(
        None,
        "--sf",
        show_default=False,
        help="Dataset scale factor (1.0: 10k customers, 200k orders; default: the preset's).",
    ),
    seed: Seed = 42,
    repeat: int = typer.Option(
        1,
        min=1,
        help="Rounds: every implementation once per round, the "
        "order reversed every other round; each round is a results "
        "directory, and the answer and the last round's report pool them.",
    ),
    arrival_rate: float | None = typer.Option(
        None,
        min=0.1,
        show_default=False,
        help="Open loop: this many requests per second in total, whatever the response times; "
        "latency is then also recorded from each request's intended start. Default: closed loop.",
    ),
    experiment: str | None = typer.Option(
        None,
        show_default=False,
        help="Name of the experiment folder; default: the preset's name, "
        "or MIX-SHAPE-TRANSPORT when --mix or --shape is given.",
    ),
    results: Path = typer.Option(
        None, show_default=False, help="Root of the results; default: results/ of this checkout."
    ),
    collectors: bool = typer.Option(
        True,
        help="Sample sessions, statistics, logs, lag and CPU "
        "beside the load (--no-collectors: latency only).",
    ),
    database: str | None = typer.Option(
        None,
        show_default=False,
        help="Measure this existing run database (see `provision`) instead of a fresh clone; "
        "it is neither changed nor dropped. One --impl.",
    ),
    service_url: str | None = typer.Option(
        None,
        show_default=False,
        help="Measure the API already serving --database at this URL: no service and no "
        "projector are started (the deployment's own projector's lag per commit is not recorded).",
    ),
    service_workers: int | None = typer.Option(
        None,
        min=1,
        show_default=False,
        help=f"http: worker processes of the API service the run starts (`serve --workers`), "
        f"each with its own connection pools; default {SERVICE_WORKERS} (1 for a mix that runs "
        "reports, which one worker holds). Recorded in run.json's config (null when the run "
        "starts no service).",
    ),
    locust_workers: int = typer.Option(
        0, min=0, help="Run Locust as a master with this many worker processes (0: one process)."
    ),
    external_workers: bool = typer.Option(
        False,
        help="Start no workers: wait for --locust-workers of them to connect to the "
        "master (from other machines: locust -f workloads/locustfile.py --worker --master-host H).",
    ),
    master_port: int | None = typer.Option(
        None, show_default=False, help="Port the Locust master listens on; default: a free one."
    ),
    refresh_interval: float = typer.Option(
        INTERVAL,
        min=0.1,
        help="Architectures with a refresher: seconds from the start of one round of "
        "materialized-view refreshes to the next (recorded in run.json's config).",
    ),
    retries: int = typer.Option(
        MAX_RETRIES,
        min=0,
        help="Times a command is run again after a serialization failure or a deadlock (each "
        "retry counted in the results; what still fails is an error serialization_failure or "
        "deadlock); recorded in run.json's config.",
    ),
    report: bool = typer.Option(
        True,
        help="End by writing RUN/report/report.md: charts and "
        "the decision record (`cqrs-bench report`).",
    ),
    hot_standby_feedback: bool = typer.Option(
        False,
        help="Architectures reading a standby: turn its hot_standby_feedback on (fewer queries "
        "cancelled by recovery conflicts, vacuum held back on the primary); recorded in run.json.",
    ),
    service_cpu_quota: float | None = typer.Option(
        None,
        min=0.01,
        show_default=False,
        help="Starve the service on purpose: run it (and its children) in a cgroup the run makes "
        "and removes, limited to this many CPUs (0.2: a fifth of one) once it answers; http "
        "transport; needs a writable cgroup cpu controller (root). Recorded in run.json.",
    ),
    settings: Settings = None,
    write_dsn: WriteDsn = None,
    read_dsn: ReadDsn = None,
    replica_dsn: ReplicaDsn = None,
) -> None:
    """Measure the architectures one after another under the same load, each on a fresh clone of
    the same dataset, verified before and reconciled after; write results/EXPERIMENT/RUN/ and
    print the answer (checkout p99 against dashboard load, each architecture against the baseline with
    its 95% interval, the costs), a summary table and the article's claims. Ctrl-C stops
    everything, keeps what was measured, and marks the run incomplete."""
    chosen = presets.preset(preset)
    names = (
        [name.strip() for name in impl.split(",") if name.strip()]
        if impl
        else presets.impls(chosen)
    )
    given = {"mix": mix, "shape": shape, "duration": duration, "warmup": warmup, "sf": sf}
    options = {**chosen, **{k: v for k, v in given.items() if v is not None}}
    if experiment is None and (mix or shape):
        experiment = f"{Path(options['mix']).stem}-{Path(options['shape']).stem}-{transport}"
    plan = RunPlan(
        impls=names,
        mix=options["mix"],
        shape=options["shape"],
        transport=transport,
        duration=options["duration"],
        warmup=options["warmup"],
        sf=options["sf"],
        seed=seed,
        arrival_rate=arrival_rate,
        experiment=experiment or options["experiment"],
        repeat=repeat,
        preset=preset,
        results_root=(results or default_results()).resolve(),
        collectors=collectors,
        report=report,
        database=database,
        service_url=service_url,
        service_workers=service_workers,
        locust_workers=locust_workers,
        external_workers=external_workers,
        master_port=master_port,
        refresh_interval=refresh_interval,
        retries=retries,
        hot_standby_feedback=hot_standby_feedback,
        service_cpu_quota=service_cpu_quota,
        settings=registry.parse_settings(settings or (), names),
    )
    plan.check()
    check_results(plan.results_root / plan.experiment)
    if database:
        require_lasting_servers(
            write_dsn, read_dsn, f"--database {database} needs the servers that hold it"
        )
    with use_servers(write_dsn, read_dsn, replica_dsn=replica_dsn, announce=typer.echo) as servers:
        previous = signal.signal(signal.SIGINT, _stopping)
        try:
            run_plan(plan, servers, progress=typer.echo)
        finally:
            signal.signal(signal.SIGINT, previous)
