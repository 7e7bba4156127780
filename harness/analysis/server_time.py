"""Where checkout's server time goes: the share of its sessions' sampled time on CPU
and in each kind of wait, per architecture and number of analysts (issue 16, item 3).

The source, per run and implementation, is what run.json's `wait_sampler` names:
- `pg_wait_sampling`: the extension's in-server samples (wait_profile.parquet, 100 Hz per
  backend, CPU included); each stands for 1 / PROFILE_HZ s. Client/ClientRead samples are left
  out: the extension samples idle sessions there too, and cannot tell them from sessions between
  their transaction's statements (so `Client` holds the other client waits only, e.g.
  ClientWrite).
- `activity` (else): the 10 Hz active-session samples (waits.parquet); each sample of a busy
  command session stands for 1 / ACTIVITY_HZ s of it on the server.
Checkout's sessions are those whose component ends in ":commands" (each architecture's command
engine names its sessions so; the commands of the other user classes, the Merchandiser's price
changes and restocks, the Prober's orders, name their class instead: implementations.db.Session's
role). The number of analysts of a sample is that of its second in the users
table (samples of a second the table does not hold are left out).
"""

from __future__ import annotations

import pandas as pd

from harness.analysis.interference import analysts_by_second
from harness.analysis.load import in_measure
from harness.collectors.activity import HZ as ACTIVITY_HZ
from harness.collectors.wait_profile import PROFILE_HZ

COMMANDS = ":commands"
# wait_event_type "" is on CPU; any type not named here counts as "other"
CATEGORIES = ("CPU", "Lock", "LWLock", "IO", "Client", "other")
KEYS = ["run", "impl", "analysts"]
# what the extension samples idle sessions in (and sessions between statements)
IDLE_WAIT = ("Client", "ClientRead")


def category(wait_event_type: pd.Series) -> pd.Series:
    """Each wait_event_type as one of CATEGORIES."""
    named = wait_event_type.replace("", "CPU")
    return named.where(named.isin(CATEGORIES), "other")


def profile_samples(profile: pd.DataFrame) -> pd.DataFrame:
    """wait_profile rows as one row per sample (ts = the interval's start), idle waits
    (IDLE_WAIT) left out: the frame command_shares counts, with a `weight` of samples."""
    idle = (profile["wait_event_type"] == IDLE_WAIT[0]) & (profile["wait_event"] == IDLE_WAIT[1])
    return profile[~idle].assign(weight=profile["samples"])


def command_shares(
    waits: pd.DataFrame,
    users: pd.DataFrame,
    windows: pd.DataFrame,
    profile: pd.DataFrame | None = None,
) -> pd.DataFrame:
    """Per run, implementation, number of analysts and category, over the measure phase: the
    command sessions' `samples`, `seconds` (session-seconds on the server) and `share` of the
    level's samples; `level_samples`, all samples of the level (a share resting on a few samples
    is noise); and `source` (`pg_wait_sampling` or `activity`). Every category has a row per
    level (0 when none).

    `profile`: wait_profile rows of the runs and implementations whose `wait_sampler` is
    `pg_wait_sampling`; for them it is the source and their waits rows are not used."""
    columns = [*KEYS, "category", "samples", "seconds", "share", "level_samples", "source"]
    activity = waits.assign(weight=1)
    parts = []
    if profile is not None and len(profile):
        sampled = profile_samples(profile)
        used = profile[["run", "impl"]].drop_duplicates()
        activity = activity.merge(used, on=["run", "impl"], how="left", indicator=True)
        activity = activity[activity["_merge"] == "left_only"].drop(columns="_merge")
        parts.append((sampled, "pg_wait_sampling", PROFILE_HZ))
    parts.append((activity, "activity", ACTIVITY_HZ))
    tables = [_shares(frame, users, windows, source, hz) for frame, source, hz in parts]
    tables = [t for t in tables if len(t)]
    if not tables:
        return pd.DataFrame(columns=columns)
    return pd.concat(tables, ignore_index=True)[columns]


def _shares(
    samples: pd.DataFrame, users: pd.DataFrame, windows: pd.DataFrame, source: str, hz: float
) -> pd.DataFrame:
    """command_shares of one source: `samples` rows (ts, component, wait_event_type, weight)."""
    commands = in_measure(samples[samples["component"].str.endswith(COMMANDS)], "ts", windows)
    if commands.empty:
        return pd.DataFrame()
    frame = commands.assign(
        second=commands["ts"].dt.floor("s"), category=category(commands["wait_event_type"])
    )
    frame = frame.merge(analysts_by_second(users), on=["run", "impl", "second"], how="inner")
    if frame.empty:
        return pd.DataFrame()
    counts = frame.groupby([*KEYS, "category"])["weight"].sum().unstack("category")
    counts = counts.reindex(columns=list(CATEGORIES)).fillna(0).astype("int64")
    table = counts.stack().rename("samples").reset_index()
    total = table.groupby(KEYS)["samples"].transform("sum")
    table["seconds"] = table["samples"] / hz
    table["share"] = table["samples"] / total
    table["level_samples"] = total
    table["source"] = source
    return table


def wide(shares: pd.DataFrame) -> pd.DataFrame:
    """command_shares as one row per run, implementation and level: `samples` and a column of
    percent per category, for a table in the report."""
    if shares.empty:
        return pd.DataFrame(columns=[*KEYS, "samples", *CATEGORIES])
    table = shares.pivot_table(index=[*KEYS, "level_samples"], columns="category", values="share")
    table = (table.reindex(columns=list(CATEGORIES)) * 100).round(1)
    table = table.reset_index().rename(columns={"level_samples": "samples"})
    table.columns.name = None
    return table
