"""The architectures, found by their folders.

An architecture is a folder of `implementations/` holding an `architecture.toml` (what the
harness needs to know of it: see `Architecture`) and a package whose `create(name, config)` builds
it. Its name is the folder's name with `-` for `_`. Nothing outside the folder names it: the
runner, the results schema, the analysis, the benchmarks and the tests take names, descriptions,
colours and capabilities from here.

More architectures can live outside the tree: CQRS_BENCH_ARCHITECTURES lists directories
(separated by `:`) whose folders join the `implementations` package, found the same way (child
processes inherit the variable, so they find them too).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import implementations
from implementations.interface import Config, Implementation

METADATA = "architecture.toml"
PATH_ENV = "CQRS_BENCH_ARCHITECTURES"
READ_MODELS = ("write tables", "asynchronous", "synchronous")


class ArchitectureError(ValueError):
    """An architecture folder whose architecture.toml is missing something or malformed."""


@dataclass(frozen=True)
class Architecture:
    """One architecture, as its folder's architecture.toml declares it."""

    name: str
    package: str  # the Python package of its folder
    folder: Path
    description: str  # one line: what it is, for reports and --help
    colour: str  # its colour in every chart (a matplotlib colour)
    baseline: bool = False  # the architecture the others are compared with (exactly one)
    projection: bool = False  # a projector process fills its read models from its outbox
    separate_read_server: bool = False  # its read models live on the read server
    # a refresher process refreshes its materialized views every --refresh-interval seconds
    # (`impl.refresher`); its dashboards' freshness is the age of the views' data
    refresher: bool = False
    # its queries read a streaming-replication hot standby of the write server: the harness
    # starts one (or takes --replica-dsn) and gives Config.read_dsn on it
    reads_standby: bool = False
    # its write side is an event store: any order's or product's state as of a version or a
    # time (`impl.history`, `cqrs-bench state`, GET /history/...)
    event_sourced: bool = False
    # where its queries read: the write tables themselves, read models updated after the
    # command commits (asynchronous), or read models updated in the command's transaction
    read_model: Literal["write tables", "asynchronous", "synchronous"] = "write tables"
    # measured by `cqrs-bench run` without --impl (the main job, which has a time budget); the
    # others run when named
    default_run: bool = True


def _roots() -> list[Path]:
    """The directories architecture folders are found in: the package's own, then the extra
    ones of CQRS_BENCH_ARCHITECTURES (added to the package's search path)."""
    for extra in filter(None, os.environ.get(PATH_ENV, "").split(":")):
        if not Path(extra).is_dir():
            raise ArchitectureError(f"{PATH_ENV}: {extra} is not a directory")
        if extra not in implementations.__path__:
            implementations.__path__.append(extra)
    return [Path(p) for p in implementations.__path__]


def _read(path: Path) -> Architecture:
    folder = path.parent
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as exc:
        raise ArchitectureError(f"{path}: {exc}") from None
    fields = {f.name: f for f in dataclasses.fields(Architecture)}
    given = {"name", "package", "folder"} & set(data)
    unknown = set(data) - set(fields)
    if given or unknown:
        raise ArchitectureError(f"{path}: unknown keys {sorted(given | unknown)}")
    for key in ("description", "colour"):
        if not isinstance(data.get(key), str) or not data[key]:
            raise ArchitectureError(f"{path}: {key} is required (a string)")
    if data.get("read_model", "write tables") not in READ_MODELS:
        raise ArchitectureError(f"{path}: read_model must be one of {', '.join(READ_MODELS)}")
    return Architecture(
        name=folder.name.replace("_", "-"),
        package=f"{implementations.__name__}.{folder.name}",
        folder=folder,
        **data,
    )


@functools.cache
def architectures() -> dict[str, Architecture]:
    """Every architecture by name: the baseline first, then by name."""
    found = [_read(p) for root in _roots() for p in sorted(root.glob(f"*/{METADATA}"))]
    baselines = [a.name for a in found if a.baseline]
    if len(baselines) != 1:
        raise ArchitectureError(f"exactly one architecture must be the baseline, not {baselines}")
    return {a.name: a for a in sorted(found, key=lambda a: (not a.baseline, a.name))}


def names() -> list[str]:
    return list(architectures())


def check(name: str) -> str:
    """`name`, or ValueError naming the implementations there are."""
    if name not in architectures():
        raise ValueError(f"unknown implementation {name!r}; choose from {', '.join(names())}")
    return name


def architecture(name: str) -> Architecture:
    return architectures()[check(name)]


def baseline() -> str:
    """The name of the architecture the others are compared with."""
    return next(a.name for a in architectures().values() if a.baseline)


def default_run() -> list[str]:
    """The architectures `cqrs-bench run` measures when no --impl is given."""
    return [a.name for a in architectures().values() if a.default_run]


def projected() -> list[str]:
    """The architectures with a projection (a projector process fills their read models), those
    of the main job first: the first is the default of commands about a projection."""
    found = [a for a in architectures().values() if a.projection]
    return [a.name for a in sorted(found, key=lambda a: not a.default_run)]


def event_sourced() -> list[str]:
    """The architectures whose write side is an event store (time travel)."""
    return [a.name for a in architectures().values() if a.event_sourced]


def refreshed() -> list[str]:
    """The architectures with a refresher (materialized views refreshed in the background)."""
    return [a.name for a in architectures().values() if a.refresher]


def lagging(name: str) -> bool:
    """Whether `name`'s dashboards may answer from data behind the write model (a projection, a
    refresher or a standby), and so have a freshness; False for one this tree does not have."""
    known = architectures().get(name)
    return known is not None and (known.projection or known.refresher or known.reads_standby)


def create(name: str, config: Config) -> Implementation:
    return importlib.import_module(architecture(name).package).create(name, config)
