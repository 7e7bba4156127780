"""Command-line options shared by several commands."""

from __future__ import annotations

import os
from typing import Annotated

import typer

from harness.deploy.components import EXIT_WITH_PARENT
from harness.postgres.servers import READ_DSN_ENV, REPLICA_DSN_ENV, WRITE_DSN_ENV, parse_cpus
from implementations import registry

WriteDsn = Annotated[
    str | None,
    typer.Option(
        "--write-dsn",
        envvar=WRITE_DSN_ENV,
        help="Use this existing write server (postgresql://...) instead of embedded ones.",
        show_default=False,
    ),
]
ReplicaDsn = Annotated[
    str | None,
    typer.Option(
        "--replica-dsn",
        envvar=REPLICA_DSN_ENV,
        help="A hot standby streaming from the write server, for architectures that read one "
        "(default: one started from a base backup of the embedded write server).",
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
    typer.Option("--impl", help=f"Implementation: {', '.join(registry.names())}."),
]
Settings = Annotated[
    list[str] | None,
    typer.Option(
        "--set",
        metavar="IMPL.NAME=VALUE",
        help="An architecture's own setting (repeatable), recorded in run.json: "
        f"{registry.settings_help()}.",
        show_default=False,
    ),
]
BASELINE = registry.baseline()  # the default --impl of commands that take any architecture
PROJECTED = registry.projected()[0]  # the default --impl of commands about a projection
ScaleFactor = Annotated[
    float, typer.Option("--sf", help="Dataset scale factor (1.0: 10k customers, 200k orders).")
]
Seed = Annotated[
    int, typer.Option("--seed", help="Dataset seed: the same seed gives the same rows.")
]


WRITE_CPUS_ENV, READ_CPUS_ENV = "CQRS_BENCH_WRITE_CPUS", "CQRS_BENCH_READ_CPUS"
WriteCpus = Annotated[
    str | None,
    typer.Option(
        "--write-cpus",
        envvar=WRITE_CPUS_ENV,
        show_default=False,
        help="Pin the embedded write server to these CPUs (e.g. 0, or 0-1).",
    ),
]
ReadCpus = Annotated[
    str | None,
    typer.Option(
        "--read-cpus",
        envvar=READ_CPUS_ENV,
        show_default=False,
        help="Pin the embedded read server to these CPUs (e.g. 1).",
    ),
]
Cpus = Annotated[
    str | None,
    typer.Option("--cpus", show_default=False, help="Pin this process to these CPUs (e.g. 1)."),
]
ExitWithParent = Annotated[
    bool,
    typer.Option(EXIT_WITH_PARENT, help="Stop when the process that started this one ends."),
]


def pin_this_process(text: str | None) -> None:
    if cpus := parse_cpus(text):
        os.sched_setaffinity(0, cpus)
