"""Load run directories (results/<experiment>/<run>/) into tidy DataFrames.

Every table a run holds is read as it is, with one column added in front: `run`, the run's label
(`<experiment>/<run-id>`), so tables of many runs concatenate and group like one. A run of an
older results schema version reads like a new one: a table it lacks is empty, a column it lacks
is `""` (text) or null. A run is
checked against the results format first (`harness.results.check_run`); a run with problems, or
one still marked `running`, is refused with a ValueError that says why.

A run reads each of its tables from disk once and shares it. `Loaded` holds the runs analysed
together: their tables concatenated, their measure windows, and what is computed from them
(functions decorated with `once`: the evidence table, the answer, ...), each computed once and
shared by the summary, the report, its charts and the notebooks. Shared tables are read-only.
"""

from __future__ import annotations

import functools
import glob
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd

from harness.results import check_run, empty_frame, is_run_dir, read_run_json, schema
from harness.results.validate import impl_names


@dataclass(frozen=True)
class Run:
    """One run directory: where it is, its run.json, and the clock of each implementation."""

    path: Path
    meta: dict[str, Any] = field(repr=False)
    _tables: dict[str, pd.DataFrame] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )

    @property
    def label(self) -> str:
        return f"{self.meta.get('experiment', self.path.parent.name)}/{self.path.name}"

    @property
    def impls(self) -> list[str]:
        return impl_names(self.meta) or []

    @property
    def complete(self) -> bool:
        return self.meta.get("status") == "complete"

    @property
    def config(self) -> dict[str, Any]:
        return self.meta.get("config") or {}

    @property
    def warmup_s(self) -> float:
        return float(self.config.get("warmup", 0.0))

    @property
    def duration_s(self) -> float:
        """The measured duration (the measure phase), seconds."""
        return float(self.config.get("duration", math.nan))

    def table(self, name: str) -> pd.DataFrame:
        """The table `name` of this run with a `run` column in front (empty when it is missing),
        read from disk on first use and shared after."""
        if name not in self._tables:
            path = self.path / f"{name}.parquet"
            if path.is_file():
                frame = with_later_columns(pd.read_parquet(path), name)
            else:
                frame = empty_frame(name)
            frame.insert(0, "run", self.label)
            self._tables[name] = frame
        return self._tables[name]


def with_later_columns(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """`frame` of table `name` with the columns the schema has and it lacks (added by a later
    results schema version): `""` for text, null otherwise; in the schema's order."""
    columns = schema.table(name).columns
    missing = {c.name: "" if c.kind == "str" else None for c in columns if c.name not in frame}
    if not missing:
        return frame
    order = [c.name for c in columns] + [c for c in frame.columns if c not in missing]
    return frame.assign(**missing)[list(dict.fromkeys(order))]


def expand(paths: list[str | Path]) -> list[Path]:
    """Run directories from paths: a run directory, an experiment directory (its runs, in
    order), or a glob of either. ValueError when a path names no run."""
    found: list[Path] = []
    for given in paths:
        matches = sorted(glob.glob(str(given))) or [str(given)]
        for match in map(Path, matches):
            if is_run_dir(match):
                found.append(match)
            elif match.is_dir() and (runs := sorted(p for p in match.iterdir() if is_run_dir(p))):
                found.extend(runs)
            else:
                raise ValueError(f"{given} is not a run directory (no run.json) nor holds runs")
    return list(dict.fromkeys(p.resolve() for p in found))


def load_run(path: str | Path) -> Run:
    """One run, checked against the results format; ValueError listing its problems."""
    report = check_run(Path(path))
    if not report.ok:
        raise ValueError(f"{path} is not a valid run: {'; '.join(report.problems[:5])}")
    return Run(Path(path).resolve(), read_run_json(Path(path)))


def load_runs(paths: list[str | Path] | str | Path) -> list[Run]:
    """The runs at `paths` (see `expand`), each checked; ValueError when there is none."""
    if isinstance(paths, str | Path):
        paths = [paths]
    runs = [load_run(p) for p in expand(list(paths))]
    if not runs:
        raise ValueError("no run directories given")
    return runs


def read(runs: list[Run], name: str) -> pd.DataFrame:
    """Table `name` of every run, concatenated (the `run` column tells them apart)."""
    frames = [run.table(name) for run in runs]
    non_empty = [f for f in frames if len(f)]
    return pd.concat(non_empty, ignore_index=True) if non_empty else frames[0]


T = TypeVar("T")


class Loaded:
    """Runs analysed together: each table of theirs read once, and what is computed from them
    (`once`) computed once, for every figure that uses it."""

    def __init__(self, runs: list[Run]) -> None:
        self.runs = list(runs)
        self._tables: dict[str, pd.DataFrame] = {}
        self._computed: dict[Callable[[Loaded], Any], Any] = {}

    @property
    def labels(self) -> list[str]:
        return [run.label for run in self.runs]

    def table(self, name: str) -> pd.DataFrame:
        """Table `name` of every run, concatenated (`read`)."""
        if name not in self._tables:
            self._tables[name] = read(self.runs, name)
        return self._tables[name]

    @functools.cached_property
    def windows(self) -> pd.DataFrame:
        """The measure phase of each run and implementation (`measure_windows`)."""
        return measure_windows(self.runs)

    def computed(self, compute: Callable[[Loaded], T]) -> T:
        """`compute(self)`, computed on the first call and shared after."""
        if compute not in self._computed:
            self._computed[compute] = compute(self)
        return self._computed[compute]


def once(compute: Callable[[Loaded], T]) -> Callable[[Loaded], T]:
    """`compute`, computed once per Loaded and shared after (see `Loaded.computed`)."""

    @functools.wraps(compute)
    def shared(data: Loaded) -> T:
        return data.computed(compute)

    return shared


def load_start(latency: pd.DataFrame) -> pd.DataFrame:
    """Per run and implementation, the epoch start of the load (`second - elapsed_s`)."""
    start = latency["second"] - pd.to_timedelta(latency["elapsed_s"], unit="s")
    return (
        latency.assign(load_start=start)
        .groupby(["run", "impl"], as_index=False)["load_start"]
        .min()
    )


def measure_windows(runs: list[Run]) -> pd.DataFrame:
    """Per run and implementation: `measure_start`, `measure_end` (UTC) and `seconds`."""
    rows = []
    for run in runs:
        starts = load_start(run.table("latency"))
        for start in starts.itertuples():
            begin = start.load_start + pd.Timedelta(seconds=run.warmup_s)
            rows.append(
                {
                    "run": run.label,
                    "impl": start.impl,
                    "measure_start": begin,
                    "measure_end": begin + pd.Timedelta(seconds=run.duration_s),
                    "seconds": run.duration_s,
                }
            )
    return pd.DataFrame(rows, columns=["run", "impl", "measure_start", "measure_end", "seconds"])


def in_measure(frame: pd.DataFrame, column: str, windows: pd.DataFrame) -> pd.DataFrame:
    """The rows of `frame` whose `column` (a timestamp) falls in their run's measure phase."""
    if frame.empty:
        return frame
    joined = frame.merge(
        windows[["run", "impl", "measure_start", "measure_end"]], on=["run", "impl"], how="inner"
    )
    keep = (joined[column] >= joined["measure_start"]) & (joined[column] < joined["measure_end"])
    return joined[keep].drop(columns=["measure_start", "measure_end"]).reset_index(drop=True)
