"""`cqrs-bench load`: build the dataset template for (sf, seed) on the write server."""

from __future__ import annotations

from typing import Annotated

import typer

from harness.postgres.servers import WRITE_DSN_ENV, use_servers
from harness.postgres.templates import DatasetError, TemplateInfo, ensure_template
from workloads.dataset import validate


def load(
    sf: Annotated[
        float,
        typer.Option(help="Scale factor: 1 is about 10k customers, 2k products, 200k orders."),
    ] = 0.1,
    seed: Annotated[
        int, typer.Option(help="Random seed: the same (sf, seed) gives the same rows.")
    ] = 42,
    write_dsn: Annotated[
        str | None,
        typer.Option(
            help=f"Write server (libpq URL); default ${WRITE_DSN_ENV} or `db up` servers."
        ),
    ] = None,
    rebuild: Annotated[bool, typer.Option(help="Drop the template and build it again.")] = False,
) -> None:
    """Generate the seeded dataset and COPY it into a template database, once per (sf, seed).

    Runs clone the template in seconds. An existing template is kept unless --rebuild is given.
    """
    try:
        validate(sf, seed)
        with use_servers(write_dsn, None) as servers:
            if servers.origin == "ephemeral":
                typer.echo(
                    "note: these servers and the template vanish when this command ends; "
                    "start a pair that stays with `cqrs-bench db up` (or pass --write-dsn)"
                )
            info = ensure_template(
                servers.write_dsn, sf, seed, progress=typer.echo, rebuild=rebuild
            )
            typer.echo(_summary(info))
    except (ValueError, DatasetError) as e:
        typer.echo(f"error: {e}", err=True)
        raise typer.Exit(2 if isinstance(e, ValueError) else 1) from e


def _summary(info: TemplateInfo) -> str:
    if not info.built:
        return f"template {info.name} already built ({info.total_rows:,} rows); nothing to do"
    return (
        f"built template {info.name}: {info.total_rows:,} rows in {info.total_seconds:.1f}s "
        f"= {info.total_rows / info.total_seconds:,.0f} rows/s (drawn in {info.generate_seconds:.1f}s; "
        f"rendered, COPYed, indexed and keys checked in {info.copy_seconds:.1f}s), "
        f"checksum {info.checksum}"
    )
