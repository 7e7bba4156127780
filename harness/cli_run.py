"""`cqrs-bench run`: the main job, every architecture under the same Locust load."""

from __future__ import annotations

from pathlib import Path

import typer

from harness.options import ReadDsn, ScaleFactor, Seed, WriteDsn
from harness.runner.run import RunPlan
from harness.runner.run import run as run_plan
from harness.servers import use_servers
from implementations import registry
from workloads import spec


def default_results() -> Path:
    """results/ of this checkout, else of the current directory."""
    checkout = Path(__file__).resolve().parents[1]
    return (checkout if (checkout / "pyproject.toml").is_file() else Path.cwd()) / "results"


def run(
    impl: str = typer.Option(",".join(registry.names()), "--impl",
                             help="Implementations to measure, comma-separated, in this order."),
    mix: str = typer.Option("mixed", help=f"Workload mix: {', '.join(spec.mix_names())}, or a TOML file."),
    shape: str = typer.Option("steady", help=f"Load shape: {', '.join(spec.shape_names())}, or a TOML file."),
    transport: str = typer.Option("http", help="http: Locust drives the API service over HTTP; "
                                  "inproc: Locust calls the implementation in its own process."),
    duration: float = typer.Option(60, min=1, help="Seconds measured per implementation, after the warm-up."),
    warmup: float = typer.Option(10, min=0, help="Seconds of load before measuring starts."),
    sf: ScaleFactor = 1.0,
    seed: Seed = 42,
    arrival_rate: float | None = typer.Option(
        None, min=0.1, show_default=False,
        help="Open loop: this many requests per second in total, whatever the response times; "
        "latency is then also recorded from each request's intended start. Default: closed loop."),
    experiment: str | None = typer.Option(
        None, show_default=False, help="Name of the experiment folder; default: MIX-SHAPE-TRANSPORT."),
    results: Path = typer.Option(None, show_default=False,
                                 help="Root of the results; default: results/ of this checkout."),
    collectors: bool = typer.Option(True, help="Sample sessions, statistics, logs, lag and CPU "
                                    "beside the load (--no-collectors: latency only)."),
    database: str | None = typer.Option(
        None, show_default=False,
        help="Measure this existing run database (see `provision`) instead of a fresh clone; "
        "it is neither changed nor dropped. One --impl."),
    service_url: str | None = typer.Option(
        None, show_default=False,
        help="Measure the API already serving --database at this URL: no service and no "
        "projector are started (the deployment's own projector's per-event lag is not recorded)."),
    locust_workers: int = typer.Option(
        0, min=0, help="Run Locust as a master with this many worker processes (0: one process)."),
    external_workers: bool = typer.Option(
        False, help="Start no workers: wait for --locust-workers of them to connect to the "
        "master (from other machines: locust -f workloads/locustfile.py --worker --master-host H)."),
    master_port: int | None = typer.Option(
        None, show_default=False, help="Port the Locust master listens on; default: a free one."),
    report: bool = typer.Option(True, help="End by writing RUN/report/report.md: charts and "
                                "the decision record (`cqrs-bench report`)."),
    write_dsn: WriteDsn = None,
    read_dsn: ReadDsn = None,
) -> None:
    """Measure the architectures one after another under the same load, each on a fresh clone of
    the same dataset; write results/EXPERIMENT/RUN/ and print a summary table. Ctrl-C stops
    everything, keeps what was measured, and marks the run incomplete."""
    names = [name.strip() for name in impl.split(",") if name.strip()]
    plan = RunPlan(
        impls=names, mix=mix, shape=shape, transport=transport, duration=duration, warmup=warmup,
        sf=sf, seed=seed, arrival_rate=arrival_rate,
        experiment=experiment or f"{Path(mix).stem}-{Path(shape).stem}-{transport}",
        results_root=(results or default_results()).resolve(), collectors=collectors,
        report=report, database=database, service_url=service_url,
        locust_workers=locust_workers, external_workers=external_workers, master_port=master_port,
    )  # fmt: skip
    plan.check()
    with use_servers(write_dsn, read_dsn, announce=typer.echo) as servers:
        run_plan(plan, servers, progress=typer.echo)
