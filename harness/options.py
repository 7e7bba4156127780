"""Command-line options shared by several commands."""

from __future__ import annotations

import os
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
    typer.Option("--impl", help="Implementation: crud, cqrs-logical or cqrs-physical."),
]
ScaleFactor = Annotated[
    float, typer.Option("--sf", help="Dataset scale factor (1.0: 10k customers, 200k orders).")
]
Seed = Annotated[
    int, typer.Option("--seed", help="Dataset seed: the same seed gives the same rows.")
]


def parse_cpus(text: str | None) -> set[int] | None:
    """ "0", "0,2" or "0-1" to a set of CPU numbers this process may use; None for no pinning."""
    if not text:
        return None
    cpus: set[int] = set()
    try:
        for part in text.split(","):
            low, _, high = part.strip().partition("-")
            cpus.update(range(int(low), int(high or low) + 1))
    except ValueError:
        raise ValueError(f"not a CPU list: {text!r} (expected e.g. 0, 0,2 or 0-1)") from None
    if not cpus or not cpus <= os.sched_getaffinity(0):
        raise ValueError(
            f"CPUs {text!r} are not all available here: {sorted(os.sched_getaffinity(0))}"
        )
    return cpus


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


def pin_this_process(text: str | None) -> None:
    if cpus := parse_cpus(text):
        os.sched_setaffinity(0, cpus)
