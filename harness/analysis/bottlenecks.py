"""Which component ran at its CPU limit at each load level: the bottlenecks of a run.

A level is a number of analysts running (the `users` table, as harness/analysis/interference.py
groups the seconds): every stage of a step shape, the single level of a steady one. Over each
level's measured seconds, each component's CPU (resources.parquet: cumulative CPU seconds,
sampled at about 1 Hz; each interval between two samples gives the cores kept busy in it, counted
at the level of its midpoint) is set against its capacity (run.json `impls.<impl>.cpu_capacity`,
harness/collectors/capacity.py): the service, each Locust process, the projector, the refresher,
each PostgreSQL server, and the whole machine (its busy CPU from /proc/stat, other processes on
it too).

A component is *at its limit* at a level when it used at least THRESHOLD of its capacity in at
least SECONDS_AT_LIMIT of the level's sampled seconds (its lower quartile of per-second CPU is at
the threshold): one busy second does not flag it, one quiet second (a pause, a garbage
collection) does not hide it. A second counts within the measurement's resolution, one clock
tick (10 ms) of CPU time, which is 10% of a tenth of a core. It is *near* its limit when at
least half of the seconds were, or the 95% interval of its mean (a bootstrap over the seconds,
harness/analysis/compare.mean_interval) reaches the threshold. 90%: a component that is the
bottleneck of a closed loop shows 90-100% of its capacity, never exactly 100% (it waits on
sockets and the database between requests), and at 90% utilisation queueing already dominates
its latency (an M/M/1 queue waits 9 service times at 90%, 4 at 80%).

When the service or the load generator is at its limit, the level measured it, not the
architecture: the answer and the report say so. A database server at its limit is the
architecture being measured; the machine at its limit (every core busy) is said apart, as no
one component's fault: every component then competed for a core.
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

import pandas as pd

from harness.analysis.compare import mean_interval
from harness.analysis.interference import analysts_by_second
from harness.analysis.load import Loaded, Run, once
from harness.collectors.resources import MACHINE

THRESHOLD = 0.90  # share of its capacity from which a component is at its limit
SECONDS_AT_LIMIT = 0.75  # share of a level's seconds it must be there
MIN_SECONDS = 3  # fewer sampled seconds than this at a level: never at its limit
TICK_S = 1 / (os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100)  # CPU time resolution
RESAMPLES = 1000
SERVICE, LOCUST = "service", "locust"
COLUMNS = [
    "run",
    "impl",
    "analysts",
    "component",
    "intervals",
    "at_limit",
    "cores",
    "cores_lo",
    "cores_hi",
    "capacity",
    "basis",
    "share",
    "share_lo",
    "share_hi",
    "state",
]


def role(component: str) -> str:
    """What a component is: `service`, `load generator` (Locust and its workers), `server`,
    `machine`, or its own name (projector, refresher, runner)."""
    if component == SERVICE:
        return "service"
    if component.startswith(LOCUST):
        return "load generator"
    if component.endswith("_server"):
        return "server"
    return component


def capacities(runs: list[Run]) -> pd.DataFrame:
    """Per run, implementation and component: `capacity` (cores) and its `basis`, from run.json
    (runs before results schema 5 have none)."""
    rows = []
    for run in runs:
        impls = run.meta.get("impls")
        for impl, info in impls.items() if isinstance(impls, dict) else ():
            for component, entry in ((info or {}).get("cpu_capacity") or {}).items():
                rows.append(
                    {
                        "run": run.label,
                        "impl": impl,
                        "component": component,
                        "capacity": float(entry["cores"]),
                        "basis": str(entry.get("basis", "")),
                    }
                )
    return pd.DataFrame(rows, columns=["run", "impl", "component", "capacity", "basis"])


def intervals(resources: pd.DataFrame, windows: pd.DataFrame) -> pd.DataFrame:
    """The cores each component kept busy between consecutive samples wholly inside its run's
    measure phase: per run, implementation, component and interval, `cores`, `resolution` (one
    clock tick over the interval, in cores) and `second` (the whole epoch second of its
    midpoint)."""
    keys = ["run", "impl", "component"]
    columns = [*keys, "second", "cores", "resolution"]
    if resources.empty or windows.empty:
        return pd.DataFrame(columns=columns)
    frame = resources.sort_values("ts").assign(
        total=resources["cpu_user_s"] + resources["cpu_system_s"]
    )
    grouped = frame.groupby(keys)
    frame = frame.assign(
        grown=grouped["total"].diff(),
        start=grouped["ts"].shift(),
    ).dropna(subset=["grown", "start"])
    frame = frame.merge(
        windows[["run", "impl", "measure_start", "measure_end"]], on=["run", "impl"]
    )
    frame = frame[
        (frame["start"] >= frame["measure_start"]) & (frame["ts"] <= frame["measure_end"])
    ]
    span = (frame["ts"] - frame["start"]).dt.total_seconds()
    frame = frame[span > 0.2].assign(span=span)  # two samples taken back to back say nothing
    middle = frame["start"] + (frame["ts"] - frame["start"]) / 2
    return frame.assign(
        cores=frame["grown"] / frame["span"],
        resolution=TICK_S / frame["span"],
        second=_epoch(middle) if len(frame) else middle,
    )[columns]


def _epoch(seconds: pd.Series) -> pd.Series:
    """Timestamps (or epoch numbers) as whole epoch seconds."""
    if pd.api.types.is_datetime64_any_dtype(seconds):
        return seconds.astype("datetime64[ns, UTC]").astype("int64") // 10**9
    return seconds.astype("int64")


def _summary(group: pd.DataFrame) -> pd.Series:
    """One component at one level: its sampled seconds, those at its limit, the mean cores and
    their 95% interval."""
    cores = group["cores"].to_numpy(dtype=float)
    low, high = mean_interval(cores, RESAMPLES, 0)
    limit = THRESHOLD * group["capacity"].to_numpy(dtype=float)
    at_limit = int((cores + group["resolution"].to_numpy(dtype=float) >= limit).sum())
    return pd.Series(
        {
            "intervals": len(cores),
            "at_limit": at_limit,
            "cores": float(cores.mean()),
            "cores_lo": low,
            "cores_hi": high,
        }
    )


def state(intervals: int, at_limit: int, share_hi: float) -> str:
    """`at limit` (at least SECONDS_AT_LIMIT of at least MIN_SECONDS seconds at THRESHOLD),
    `near` (half of them, or the mean's interval reaching THRESHOLD) or `""`."""
    if intervals >= MIN_SECONDS and at_limit >= SECONDS_AT_LIMIT * intervals:
        return "at limit"
    if (intervals and at_limit >= 0.5 * intervals) or share_hi >= THRESHOLD:
        return "near"
    return ""


@once
def table(data: Loaded) -> pd.DataFrame:
    """Per run, implementation, level (`analysts`) and component: the sampled seconds
    (`intervals`) and how many of them were `at_limit`, the mean `cores` with its 95% interval,
    the `capacity` and its `basis`, the `share` of the capacity with its interval, and the
    `state` (see `state`). Only components whose capacity run.json records (runs before results
    schema 5: no rows)."""
    caps = capacities(data.runs)
    busy = intervals(data.table("resources"), data.windows)
    if caps.empty or busy.empty:
        return pd.DataFrame(columns=COLUMNS)
    levels = analysts_by_second(data.table("users"))
    levels = levels.assign(second=_epoch(levels["second"]))
    busy = busy.merge(levels, on=["run", "impl", "second"])
    busy = busy.merge(caps, on=["run", "impl", "component"])
    if busy.empty:
        return pd.DataFrame(columns=COLUMNS)
    keys = ["run", "impl", "analysts", "component"]
    out = busy.groupby(keys)[["cores", "resolution", "capacity"]].apply(_summary).reset_index()
    out = out.merge(caps, on=["run", "impl", "component"])
    for column in ("", "_lo", "_hi"):
        out[f"share{column}"] = out[f"cores{column}"] / out["capacity"]
    out = out.astype({"intervals": int, "at_limit": int})
    out["state"] = [
        state(n, k, hi)
        for n, k, hi in zip(out["intervals"], out["at_limit"], out["share_hi"], strict=True)
    ]
    rank = {c: i for i, c in enumerate(_component_order(out["component"].unique()))}
    out = out.assign(rank=out["component"].map(rank))
    return out.sort_values(["run", "impl", "analysts", "rank"])[COLUMNS].reset_index(drop=True)


def at_limit(data: Loaded) -> pd.DataFrame:
    """The rows of `table` at their limit, with their `role`."""
    found = table(data)
    found = found[found["state"] == "at limit"]
    return found.assign(role=found["component"].map(role))


def _quota(run: Run, impl: str, component: str) -> dict:
    info = (run.meta.get("impls") or {}).get(impl) or {}
    return ((info.get("cpu_quota") or {}).get(component)) or {}


def throttling(quota: dict) -> str:
    """'throttled in 97% of its quota periods (8.1 s)' from a cpu_quota record, or ''."""
    share = quota.get("throttled_share")
    if share is None:
        return ""
    return (
        f"throttled in {share:.0%} of its {quota.get('nr_periods', 0):,} quota periods "
        f"({quota.get('throttled_s', 0.0):.1f} s)"
    )


@dataclass(frozen=True)
class Finding:
    """One component at its limit at one level of one run's implementation."""

    run: str
    impl: str
    analysts: float
    component: str
    role: str
    cores: float
    cores_lo: float
    cores_hi: float
    capacity: float
    basis: str
    own_cores: float = math.nan  # machine: the run's own components' cores at that level
    throttled: str = ""

    intervals: int = 0
    at_limit: int = 0
    inproc: bool = False  # --transport inproc: Locust also ran the implementation's Python

    @property
    def where(self) -> tuple[str, str, str]:
        return (self.run, self.impl, self.component)


def levels_text(analysts: list[float]) -> str:
    """'0 analysts', '0 and 4 analysts', '0, 4, 8 and 16 analysts'."""
    names = [f"{a:g}" for a in sorted(set(analysts))]
    head = ", ".join(names[:-1])
    joined = f"{head} and {names[-1]}" if head else names[-1]
    return f"{joined} analyst{'s' * (names != ['1'])}"


def _span(values: list[float]) -> str:
    """'0.10' or '0.09-0.10'."""
    low, high = min(values), max(values)
    return f"{low:.2f}" if f"{low:.2f}" == f"{high:.2f}" else f"{low:.2f}-{high:.2f}"


def _component_sentence(group: list[Finding], several: bool) -> str:
    """The levels where one component of one run's architecture was at its limit."""
    first = group[0]
    where = f"{first.impl} at {levels_text([f.analysts for f in group])}"
    if several:
        where += f" ({first.run})"
    figures = (
        f"{_span([f.cores for f in group])} of {first.capacity:g} cores on average, at 90% of "
        f"it or more in {sum(f.at_limit for f in group)} of {sum(f.intervals for f in group)} "
        f"s; {first.basis}" + (f"; {first.throttled}" if first.throttled else "")
    )
    these = "this level" if len(group) == 1 else "these levels"
    if first.role == "service":
        return (
            f"{where}: the service ran at its CPU limit ({figures}): {these} measured the "
            "service, not the architecture."
        )
    if first.role == "load generator":
        name = "Locust" if first.component == LOCUST else f"Locust's {first.component}"
        also = (
            " (in process, it also ran the implementation's Python: the service tier)"
            if first.inproc
            else ""
        )
        return (
            f"{where}: {name}, the load generator, ran at its CPU limit ({figures}){also}: "
            f"{these} measured the load generator, not the architecture."
        )
    return f"{where}: the {first.component} ran at its CPU limit ({figures})."


def _machine_sentence(group: list[Finding], several: bool) -> str:
    """The levels of one run where the whole machine was at its limit."""
    first = group[0]
    by_impl: dict[str, list[float]] = {}
    for f in group:
        by_impl.setdefault(f.impl, []).append(f.analysts)
    parts = [f"{impl} ({levels_text(levels)})" for impl, levels in by_impl.items()]
    where = ", ".join(parts[:-1]) + (" and " if len(parts) > 1 else "") + parts[-1]
    if several:
        where += f" in {first.run}"
    cores = [f.cores for f in group]
    own = [f.own_cores for f in group if not math.isnan(f.own_cores)]
    theirs = ""
    if own:
        theirs = f"; this run's processes used {_span(own)} of them"
        if max(own) < THRESHOLD * min(cores):
            theirs += ", the rest was other work on the machine"
    return (
        f"The machine's {first.capacity:g} CPUs were all busy ({_span(cores)} cores on average) "
        f"while measuring {where}{theirs}: every component competed for a core, so latencies "
        "there include "
        "waiting for one; no single component is to blame."
    )


def sentences(found: list[Finding], several: bool = False) -> list[str]:
    """`found` in words: a sentence per component of each run's architecture at its limit (its
    levels together), and one per run for the machine (every architecture and level)."""
    groups: dict[tuple, list[Finding]] = {}
    for f in found:
        key = (f.run, "", MACHINE) if f.role == "machine" else f.where
        groups.setdefault(key, []).append(f)
    return [
        _machine_sentence(group, several)
        if group[0].role == "machine"
        else _component_sentence(group, several)
        for group in groups.values()
    ]


@once
def findings(data: Loaded) -> list[Finding]:
    """Every component at its limit, per run, implementation and level (lowest first)."""
    rows = at_limit(data)
    full = table(data)
    runs = {run.label: run for run in data.runs}
    out = []
    order = {(r.label, impl): i for r in data.runs for i, impl in enumerate(r.impls)}
    rows = rows.assign(order=[order.get(k, 0) for k in zip(rows["run"], rows["impl"], strict=True)])
    for row in rows.sort_values(["run", "order", "analysts", "component"]).itertuples():
        own = math.nan
        if row.component == MACHINE:
            same = full[
                (full["run"] == row.run)
                & (full["impl"] == row.impl)
                & (full["analysts"] == row.analysts)
                & (full["component"] != MACHINE)
            ]
            own = float(same["cores"].sum())
        out.append(
            Finding(
                row.run,
                row.impl,
                float(row.analysts),
                row.component,
                row.role,
                float(row.cores),
                float(row.cores_lo),
                float(row.cores_hi),
                float(row.capacity),
                row.basis,
                own,
                throttling(_quota(runs[row.run], row.impl, row.component)),
                int(row.intervals),
                int(row.at_limit),
                runs[row.run].config.get("transport") == "inproc",
            )
        )
    return out


FLAGGED = ("service", "load generator", "machine")  # what the answer says: not the architecture


def flags(data: Loaded) -> list[str]:
    """The sentences the answer and the summary add: the levels where the service, the load
    generator or the whole machine ran at its limit."""
    found = [f for f in findings(data) if f.role in FLAGGED]
    return sentences(found, len(data.runs) > 1)


def wide(data: Loaded, impl: str, run: str) -> pd.DataFrame:
    """One architecture's levels as rows and its components as columns, each cell the share of
    the component's capacity with its interval ('**98%** (96-100%)' in bold at the limit), and a
    `bottleneck` column naming the components at their limit."""
    found = table(data)
    found = found[(found["impl"] == impl) & (found["run"] == run)]
    if found.empty:
        return pd.DataFrame()
    order = _component_order(found["component"].unique())
    cells = found.assign(cell=[_cell(r) for r in found.itertuples()])
    out = cells.pivot_table(index="analysts", columns="component", values="cell", aggfunc="first")
    out = out.reindex(columns=order).fillna("–")
    limits = found[found["state"] == "at limit"].groupby("analysts")["component"].agg(list)
    out["at its limit"] = [", ".join(limits.get(a, [])) or "none" for a in out.index]
    return out.reset_index()


def _cell(row) -> str:
    """'98% (96-100%), 8/8 s': the mean share of the capacity, its interval and the seconds at
    the limit; bold at the limit, italic near it."""
    text = (
        f"{row.share:.0%} ({row.share_lo:.0%}-{row.share_hi:.0%}), {row.at_limit}/{row.intervals} s"
    )
    return {"at limit": f"**{text}**", "near": f"*{text}*"}.get(row.state, text)


def _component_order(components) -> list[str]:
    first = [SERVICE, LOCUST, "projector", "refresher"]
    rank = {c: i for i, c in enumerate(first)}

    def key(c: str) -> tuple:
        if c == MACHINE:
            return (3, c)
        if c.endswith("_server"):
            return (2, c)
        return (0, rank.get(c, len(first)), c) if c in rank or c.startswith(LOCUST) else (1, c)

    return sorted(components, key=key)


def capacity_line(data: Loaded, impl: str, run: str) -> str:
    """'capacity: service 0.1 cores (cgroup ... quota), ...' of one architecture in one run."""
    caps = capacities([r for r in data.runs if r.label == run])
    caps = caps[caps["impl"] == impl]
    order = _component_order(caps["component"].unique())
    caps = caps.set_index("component").reindex(order)
    return "; ".join(f"{c} {row.capacity:g} cores ({row.basis})" for c, row in caps.iterrows())


__all__ = [
    "THRESHOLD",
    "Finding",
    "capacities",
    "capacity_line",
    "findings",
    "flags",
    "intervals",
    "levels_text",
    "sentences",
    "role",
    "state",
    "table",
    "wide",
]
