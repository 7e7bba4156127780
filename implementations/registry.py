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
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
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
class Setting:
    """A knob of one architecture (architecture.toml `[settings.NAME]`): a whole number >= 0,
    given to a run with `--set IMPL.NAME=VALUE` and recorded in run.json."""

    default: int
    help: str  # one line: what it sets, and what 0 means where it means something


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
    settings: dict[str, Setting] = field(default_factory=dict)  # its own knobs, by name
    # the dataset's tables its clone keeps (every architecture's clone holds the same dataset)
    # but it never reads or writes: not counted in its storage
    unused_tables: tuple[str, ...] = ()


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
    unused = data.pop("unused_tables", [])
    if not isinstance(unused, list) or not all(isinstance(t, str) and t for t in unused):
        raise ArchitectureError(f"{path}: unused_tables must be a list of table names")
    declared = data.pop("settings", {})
    if not isinstance(declared, dict):
        raise ArchitectureError(f"{path}: settings must be tables [settings.NAME]")
    settings = {name: _setting(path, name, spec) for name, spec in declared.items()}
    return Architecture(
        name=folder.name.replace("_", "-"),
        package=f"{implementations.__name__}.{folder.name}",
        folder=folder,
        settings=settings,
        unused_tables=tuple(unused),
        **data,
    )


def _setting(path: Path, name: str, spec: object) -> Setting:
    if (
        not isinstance(spec, dict)
        or set(spec) != {"default", "help"}
        or not _whole(spec["default"])
        or not isinstance(spec["help"], str)
    ):
        raise ArchitectureError(
            f"{path}: settings.{name} needs exactly a default (a whole number >= 0) and a help"
        )
    return Setting(spec["default"], spec["help"])


def _whole(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


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


def settings_of(name: str, given: Mapping[str, int]) -> dict[str, int]:
    """Every setting of architecture `name`: `given`'s values, the declared defaults for the
    rest; ValueError for a setting it does not declare."""
    declared = architecture(name).settings
    if unknown := sorted(set(given) - set(declared)):
        known = f"its settings: {', '.join(declared)}" if declared else "it has none"
        raise ValueError(f"{name} has no setting {unknown[0]!r} ({known})")
    return {key: given.get(key, setting.default) for key, setting in declared.items()}


def parse_settings(assignments: Iterable[str], impls: Iterable[str]) -> dict[str, dict[str, int]]:
    """`--set IMPL.NAME=VALUE` options, for the architectures `impls`: IMPL -> {NAME: VALUE};
    ValueError saying what is wrong with the first bad one."""
    impls = list(impls)
    parsed: dict[str, dict[str, int]] = {}
    for text in assignments:
        target, _, raw = text.partition("=")
        impl, _, key = target.strip().rpartition(".")
        if not impl or not key or not raw.strip():
            raise ValueError(f"--set {text!r}: expected IMPL.NAME=VALUE, e.g. {_example()}")
        if impl not in impls:
            raise ValueError(f"--set {text!r}: {impl} is not measured here ({', '.join(impls)})")
        if not raw.strip().isdigit():
            raise ValueError(f"--set {text!r}: the value must be a whole number >= 0")
        given = parsed.setdefault(impl, {})
        given[key] = int(raw)
        settings_of(impl, given)  # names one it declares
    return parsed


def _example() -> str:
    found = [
        (a.name, k, s.default) for a in architectures().values() for k, s in a.settings.items()
    ]
    return f"{found[0][0]}.{found[0][1]}={found[0][2]}" if found else "IMPL.NAME=0"


def settings_help() -> str:
    """Every architecture's settings, for --help."""
    lines = [
        f"{a.name}.{key} (default {setting.default:,}): {setting.help}"
        for a in architectures().values()
        for key, setting in a.settings.items()
    ]
    return "; ".join(lines) if lines else "no architecture has settings"


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
    """Architecture `name` on `config`, its settings completed (`settings_of`)."""
    config = dataclasses.replace(config, settings=settings_of(name, config.settings))
    return importlib.import_module(architecture(name).package).create(name, config)
