"""Command-line options shared by several commands."""

from __future__ import annotations

from typing import Annotated

import typer

from harness.servers import READ_DSN_ENV, WRITE_DSN_ENV

WriteDsn = Annotated[
    str | None,
    typer.Option(
        "--write-dsn",
        envvar=WRITE_DSN_ENV,
        help="Use this existing write server (postgresql://...) instead of embedded ones.",
        show_default=False,
    ),
]
ReadDsn = Annotated[
    str | None,
    typer.Option(
        "--read-dsn",
        envvar=READ_DSN_ENV,
        help="Use this existing read server; defaults to the write server when only that is given.",
        show_default=False,
    ),
]
ImplName = Annotated[
    str,
    typer.Option("--impl", help="Implementation to use: crud (more arrive with the CQRS issues)."),
]
ScaleFactor = Annotated[
    float, typer.Option("--sf", help="Dataset scale factor (1.0: 10k customers, 200k orders).")
]
Seed = Annotated[
    int, typer.Option("--seed", help="Dataset seed: the same seed gives the same rows.")
]
