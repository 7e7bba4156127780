"""`cqrs-bench bench rebuild` and `cqrs-bench bench lag`: the projector's figures, printed."""

from __future__ import annotations

import typer

from harness.bench.lag import lag_compare_report, lag_report, run_lag
from harness.bench.rebuild import rebuild_report, run_rebuild
from harness.cli.options import PROJECTED, ReadDsn, ScaleFactor, Seed, WriteDsn
from harness.deploy.projector import BATCH_SIZE
from implementations import registry

BATCH_HELP = "Events the projector reads and applies per transaction."


def _projected(impl: str) -> list[str]:
    """The comma-separated architectures, each checked to have a projection."""
    names = [registry.check(n.strip()) for n in impl.split(",") if n.strip()]
    for name in names:
        if not registry.architecture(name).projection:
            raise typer.BadParameter(
                f"{name} has no projection; these do: {', '.join(registry.projected())}",
                param_hint="--impl",
            )
    return names


def rebuild(
    impl: str = typer.Option(
        registry.projected()[0],
        "--impl",
        help="Implementations with a projection, comma-separated: each rebuilt in turn, on a "
        "fresh clone each.",
    ),
    sf: ScaleFactor = 1.0,
    seed: Seed = 42,
    batch_size: list[int] = typer.Option(
        [BATCH_SIZE],
        "--batch-size",
        min=1,
        help=BATCH_HELP + " Repeat for a sweep: --batch-size 1000 --batch-size 5000.",
    ),
    write_dsn: WriteDsn = None,
) -> None:
    """Catch-up rate of the projector: rebuild an architecture's read models from its whole history.

    On a fresh dataset clone, the whole source (the outbox, or an event store) is replayed
    into empty read models per batch size.

    After each rebuild the checkpoint must be at the source's head and the models must agree.

    Prints events, seconds and events per second for each batch size.
    """
    for name in _projected(impl):
        result = run_rebuild(
            write_dsn=write_dsn,
            sf=sf,
            seed=seed,
            batch_sizes=batch_size,
            impl=name,
            progress=typer.echo,
        )
        typer.echo("")
        typer.echo(rebuild_report(result))


def lag(
    impl: str = typer.Option(
        PROJECTED,
        "--impl",
        help="Implementations with a projection, comma-separated: several are measured one after "
        "another and printed side by side as well.",
    ),
    rate: float | None = typer.Option(
        None,
        min=1,
        show_default=False,
        help="Checkouts per second in total, paced (the same for each implementation); "
        "default: as fast as the clients go.",
    ),
    sf: ScaleFactor = 0.1,
    seed: Seed = 42,
    clients: int = typer.Option(8, min=1, max=150, help="Checkout threads placing orders."),
    duration: int = typer.Option(20, min=1, help="Seconds of checkout per implementation."),
    batch_size: int = typer.Option(BATCH_SIZE, min=1, help=BATCH_HELP),
    write_dsn: WriteDsn = None,
    read_dsn: ReadDsn = None,
) -> None:
    """Projection time lag per source commit while checkout runs, each implementation in turn.

    Each runs on run databases of its own, provisioned as a run's are (read models on the read
    server for an architecture that keeps them there), with its projector in its own process
    (`project run --record-lag`), while in-process clients place orders.

    Prints checkout tps, lag p50/p90/p99/max per commit and whether the projector kept up; with
    several implementations, a side-by-side table too.
    """
    names = _projected(impl)
    results = run_lag(
        impls=names,
        rate=rate,
        write_dsn=write_dsn,
        read_dsn=read_dsn,
        sf=sf,
        seed=seed,
        clients=clients,
        duration=duration,
        batch_size=batch_size,
        progress=typer.echo,
    )
    for _, result in results:
        typer.echo("")
        typer.echo(lag_report(result))
    if len(results) > 1:
        typer.echo("")
        typer.echo(lag_compare_report(results, rate))
