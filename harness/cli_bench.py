"""`cqrs-bench bench ...`: benchmark commands that print their figures (not timed tests)."""

from __future__ import annotations

import typer

from harness import bench_checkout
from harness.options import ImplName, ScaleFactor, Seed, WriteDsn
from implementations import registry


def checkout(
    impl: ImplName = "crud",
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
        write_dsn=write_dsn, impl=impl, clients=clients, duration=duration, rounds=rounds,
        sf=sf, seed=seed, progress=typer.echo,
    )  # fmt: skip
    typer.echo("")
    typer.echo(bench_checkout.report(result))
