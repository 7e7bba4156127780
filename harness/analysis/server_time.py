"""Where the command side's server time goes: the share of its sessions' sampled time on CPU
and in each kind of wait, per architecture and number of analysts (issue 16, item 3).

The source is the 10 Hz active-session samples (waits.parquet; run.json's `wait_sampler` says
`activity`): each sample of a busy command session stands for 1 / ACTIVITY_HZ seconds of it on
the server. Command sessions are those whose component ends in ":commands" (each architecture's
command engine names its sessions so); checkout is most of their work, price changes, restocks
and cancels the rest. The number of analysts of a sample is that of its second in the users
table (samples of a second the table does not hold are left out).
"""

from __future__ import annotations

import pandas as pd

from harness.analysis.interference import analysts_by_second
from harness.analysis.load import in_measure
from harness.collectors.activity import HZ as ACTIVITY_HZ

COMMANDS = ":commands"
# wait_event_type "" is on CPU; any type not named here counts as "other"
CATEGORIES = ("CPU", "Lock", "LWLock", "IO", "Client", "other")
KEYS = ["run", "impl", "analysts"]


def category(wait_event_type: pd.Series) -> pd.Series:
    """Each wait_event_type as one of CATEGORIES."""
    named = wait_event_type.replace("", "CPU")
    return named.where(named.isin(CATEGORIES), "other")


def command_shares(waits: pd.DataFrame, users: pd.DataFrame, windows: pd.DataFrame) -> pd.DataFrame:
    """Per run, implementation, number of analysts and category, over the measure phase: the
    command sessions' `samples`, `seconds` (samples / ACTIVITY_HZ, session-seconds on the
    server) and `share` of the level's samples; and `level_samples`, all samples of the level
    (a share resting on a few samples is noise). Every category has a row per level (0 when
    none)."""
    columns = [*KEYS, "category", "samples", "seconds", "share", "level_samples"]
    commands = in_measure(waits[waits["component"].str.endswith(COMMANDS)], "ts", windows)
    if commands.empty:
        return pd.DataFrame(columns=columns)
    frame = commands.assign(
        second=commands["ts"].dt.floor("s"), category=category(commands["wait_event_type"])
    )
    frame = frame.merge(analysts_by_second(users), on=["run", "impl", "second"], how="inner")
    if frame.empty:
        return pd.DataFrame(columns=columns)
    counts = frame.groupby([*KEYS, "category"]).size().unstack("category")
    counts = counts.reindex(columns=list(CATEGORIES)).fillna(0).astype("int64")
    table = counts.stack().rename("samples").reset_index()
    total = table.groupby(KEYS)["samples"].transform("sum")
    table["seconds"] = table["samples"] / ACTIVITY_HZ
    table["share"] = table["samples"] / total
    table["level_samples"] = total
    return table[columns].reset_index(drop=True)


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
