"""`cqrs-bench bench ...`: benchmark commands that print their figures (not timed tests)."""

from __future__ import annotations

from pathlib import Path

import typer

from harness.bench import aggregates as bench_aggregates
from harness.bench import checkout as bench_checkout
from harness.bench import dashboards as bench_dashboards
from harness.bench import load as bench_load
from harness.bench import overhead as bench_overhead
from harness.cli.options import BASELINE, ImplName, ReadDsn, ScaleFactor, Seed, WriteDsn
from harness.cli.run import default_results
from harness.postgres.servers import use_servers
from harness.runner.run import RunPlan
from implementations import registry
from workloads.dataset import validate


def checkout(
    impl: ImplName = BASELINE,
    clients: int = typer.Option(8, min=1, max=150, help="Concurrent clients on each side."),
    duration: int = typer.Option(15, min=1, help="Seconds per measurement."),
    rounds: int = typer.Option(2, min=1, help="Rounds; each measures in-process, then pgbench."),
    sf: ScaleFactor = 0.1,
    seed: Seed = 42,
    write_dsn: WriteDsn = None,
) -> None:
    """Checkout throughput of an implementation in-process next to pgbench running the same SQL.

    The pgbench script is generated from the checkout statements; rounds alternate the two sides.

    Every count is checked against the orders the database gained; prints rounds, medians, ratio.
    """
    registry.check(impl)
    result = bench_checkout.run(
        write_dsn=write_dsn,
        impl=impl,
        clients=clients,
        duration=duration,
        rounds=rounds,
        sf=sf,
        seed=seed,
        progress=typer.echo,
    )
    typer.echo("")
    typer.echo(bench_checkout.report(result))


def overhead(
    transport: str = typer.Option("http", help="http or inproc (as in `cqrs-bench run`)."),
    duration: float = typer.Option(20, min=1, help="Seconds measured per run."),
    warmup: float = typer.Option(5, min=0, help="Seconds of load before measuring."),
    pairs: int = typer.Option(2, min=1, help="Collectors off/on pairs, alternated."),
    sf: ScaleFactor = 0.1,
    seed: Seed = 42,
    results: Path = typer.Option(
        None, show_default=False, help="Root of the results; default: results/ of this checkout."
    ),
    write_dsn: WriteDsn = None,
    read_dsn: ReadDsn = None,
) -> None:
    """The harness's own overhead, with `cqrs-bench run` on the baseline: the request rate one Locust
    process reaches on /health (no database work) against the default mix's rate, and checkout
    throughput (no think time) with every collector on against all off (goal: ratio >= 0.95)."""
    plan = RunPlan(
        impls=[bench_overhead.IMPL],
        transport=transport,
        duration=duration,
        warmup=warmup,
        sf=sf,
        seed=seed,
        results_root=(results or default_results()).resolve(),
    )
    plan.check()
    with use_servers(write_dsn, read_dsn, announce=typer.echo) as servers:
        result = bench_overhead.measure_overhead(servers, plan, pairs, progress=typer.echo)
    typer.echo("")
    typer.echo(bench_overhead.report(result))


def load(
    sf: ScaleFactor = 1,
    seed: Seed = 42,
    rounds: int = typer.Option(
        3, min=1, help="Rounds; each builds the dataset, then pgbench -i (their spread is shown)."
    ),
    write_dsn: WriteDsn = None,
) -> None:
    """Dataset build rate next to `pgbench -i` on the same server, and template clone times.

    Each round builds the (sf, seed) dataset under a scratch name, as `cqrs-bench load` does,
    then runs `pgbench -i` at the scale with the nearest row count; prints both rates (rows over
    the whole build, pgbench's own "done in"), their ratio and the spread of the rounds' ratios.
    Then clones the template with FILE_COPY and WAL_LOG, and as a run does. Everything made is
    dropped at the end.
    """
    with use_servers(write_dsn, None, announce=typer.echo) as servers:
        result = bench_load.run(servers.write_dsn, sf, seed, rounds, progress=typer.echo)
    typer.echo("")
    typer.echo(bench_load.report(result))


def dashboards(
    impl: ImplName = BASELINE,
    sf: str = typer.Option(
        "1,10", help="Scale factors, comma-separated: one clone each, measured in turn."
    ),
    seed: Seed = 42,
    repeat: int = typer.Option(3, min=1, help="Times each query and window runs; the median."),
    write_dsn: WriteDsn = None,
    read_dsn: ReadDsn = None,
) -> None:
    """What the dashboards cost at each scale: every dashboard query of the dashboard-heavy mix
    over each of its windows, one at a time on an idle run clone per scale factor; the median
    per query and window, and each scale's cost as a multiple of the first's."""
    registry.check(impl)
    try:
        scales = [float(text) for text in sf.split(",") if text.strip()]
        for value in scales:
            validate(value, seed)
    except ValueError as e:
        raise typer.BadParameter(str(e), param_hint="--sf") from e
    with use_servers(write_dsn, read_dsn, announce=typer.echo) as servers:
        timings = bench_dashboards.run(servers, impl, scales, seed, repeat, progress=typer.echo)
    typer.echo("")
    typer.echo(bench_dashboards.report(timings))


def aggregates(
    sf: ScaleFactor = 1,
    seed: Seed = 42,
    loads: int = typer.Option(200, min=10, help="Loads of the hottest product, each way."),
    write_dsn: WriteDsn = None,
) -> None:
    """An event-sourced architecture's costs before it decides: its history converted into the
    event store, snapshotted and projected (each timed, on a fresh clone), then its hottest
    product loaded from a snapshot and from every event, alternating: p50 and p99 of each with
    95% bootstrap intervals."""
    result = bench_aggregates.run(
        write_dsn=write_dsn, sf=sf, seed=seed, loads=loads, progress=typer.echo
    )
    typer.echo("")
    typer.echo(bench_aggregates.report(result))
