"""The claims of the article that started the project (../shared/ARTICLE.txt), each tested
against a run's figures and given a verdict: holds, does not hold, not shown (the figures that
would show it are within noise), or not tested by this run (with the run that would test it).

The latency comparisons are the answer's (harness/analysis/answer.py): checkout p99 per number of
analysts with 95% block-bootstrap intervals. A difference decides a verdict only when it is beyond
noise and material: at least 10% of the figure it is compared with, and 1 ms (answer.MATERIAL),
so a statistically clear 1 ms does not turn a claim about what a design is "needed" for. Lock waits come from the 10 Hz session samples, each
waiting session's blockers named by their component (`blocker_component`).
"""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from harness.analysis import conflicts, horizon
from harness.analysis.answer import MATERIAL, Answer, Difference, Level, answer, difference
from harness.analysis.compare import latency_sampler
from harness.analysis.contention import ACTIVITY_HZ, lock_wait_by_blocker
from harness.analysis.evidence import evidence
from harness.analysis.latency import headline_kind, measured
from harness.analysis.load import Loaded, once
from implementations import registry

HOLDS, FAILS, NOT_SHOWN, UNTESTED = "holds", "does not hold", "not shown", "not tested"
SLIGHTLY_BEHIND_MS = 1000.0  # "slightly behind": dashboards' data under a second old at p99


@dataclass(frozen=True)
class Claim:
    short: str  # for the summary's table
    quote: str  # the article's words
    verdict: str
    figures: str  # the numbers the verdict rests on, or the run that would test it


def _role(component: str) -> str:
    """commands, queries, projector, ... (a component is `<impl>:<role>` or `<role>`)."""
    return component.rsplit(":", 1)[-1]


# the roles of an implementation's sessions: its queries, its commands (checkout's), and the
# commands of the Merchandiser (catalog edits: their sessions name the class, see
# implementations.db.Session's role)
BLOCKERS = ("queries", "commands", "merchandiser")
BACKGROUND = ("projector", "refresher")  # the roles of its background processes


def _blocked_by(table: pd.DataFrame) -> dict[str, float]:
    """Lock-wait samples of these rows (lock_wait_by_blocker's) by the role of their blockers (a
    sample blocked by sessions of two roles counts for both)."""
    blockers = table["blocker_component"].map(lambda b: {_role(c) for c in b.split(",") if c})
    return {
        role: float(
            table.loc[
                blockers.map(lambda roles, role=role: role in roles).astype(bool), "samples"
            ].sum()
        )
        for role in (*BLOCKERS, *BACKGROUND)
    }


def _described(table: pd.DataFrame) -> str:
    """ "N (n behind role, ...)": these rows' lock-wait samples, and those whose blocker was seen."""
    known = ", ".join(f"{n:.0f} behind {r}" for r, n in _blocked_by(table).items() if n)
    return f"{table['samples'].sum():.0f}" + (f" ({known})" if known else "")


def _isolation(data: Loaded) -> tuple[str, str, float]:
    """The runs' isolation of checkout (the Shopper's), of dashboards (the Analyst's) and the
    analysts' report length in seconds (0: none), from run.json's mix as it was read; read
    committed and 0 for runs that predate them."""
    classes = {}
    for run in data.runs:
        classes = run.meta.get("config", {}).get("mix_spec", {}).get("classes", {}) or classes
    shopper, analyst = classes.get("Shopper", {}), classes.get("Analyst", {})
    return (
        shopper.get("isolation", "read committed"),
        analyst.get("isolation", "read committed"),
        float(analyst.get("report_s", 0.0) or 0.0),
    )


def _conflicting(data: Loaded, result: Answer) -> tuple[bool, str]:
    """Whether the reference's checkouts met more serialization failures and deadlocks with the
    most analysts than with none, beyond noise (the dashboards' predicate locks, under
    SERIALIZABLE), and the figures: each architecture's conflict rate at both levels."""
    if result.baseline is None or result.top is None or not conflicts.any_conflicts(data):
        return False, ""
    ref, none, most = result.reference, result.baseline.analysts, result.top.analysts
    parts, rises = [], {}
    for impl in [ref, *[i for i in result.versus]]:
        low, high = conflicts.rate(data, impl, none), conflicts.rate(data, impl, most)
        if low is None or high is None:
            continue
        a, b = conflicts.rise_interval(low, high)
        rises[impl] = a > 0
        rise = f"{_points(high.value - low.value)}, 95% interval {_points(a)} to {_points(b)}"
        change = rise if a > 0 or b < 0 else f"within noise ({rise})"
        parts.append(
            f"{impl} {low.describe()} with no analysts, {high.describe()} at "
            f"{result.top.describe()}: {change}"
        )
    if not parts:
        return False, ""
    return rises.get(ref, False), (
        "; serialization failures, deadlocks and version conflicts met by checkout (retried, or "
        "failed after the retries): " + "; ".join(parts)
    )


def _points(share: float) -> str:
    """A difference of two shares, in percentage points."""
    return f"{share * 100:+.1f} points"


def _held_snapshots(data: Loaded) -> str:
    """What the reports' held snapshots cost each architecture's write database: the oldest
    transaction, who held it, and products' dead row versions over the measure phase."""
    summary = horizon.horizon_summary(data.table("horizon"), data.windows)
    summary = summary[summary["server"] == "write"]
    growth = horizon.table_growth(data.table("table_stats"), data.windows)
    growth = growth[(growth["server"] == "write") & (growth["relation"] == "products")]
    parts = []
    for row in summary.itertuples():
        text = f"{row.impl} {row.oldest_xact_s:.1f} s ({row.oldest_holder})"
        grown = growth[growth["impl"] == row.impl]
        if len(grown):
            g = grown.iloc[0]
            text += (
                f", products' dead row versions {g['dead_start']:.0f} to {g['dead_end']:.0f} "
                f"(at most {g['dead_max']:.0f}), {g['hot_ratio']:.0%} of its updates HOT"
            )
        parts.append(text)
    if not parts:
        return ""
    return (
        "; reports took no locks but held the horizon of the write server, so vacuum could not "
        "remove the dead row versions checkout left (the oldest transaction over the measure "
        "phase): " + "; ".join(parts)
    )


def _locks(data: Loaded, result: Answer) -> Claim:
    quote = "Every complex query for the dashboard locks rows that the checkout process needs."
    short = "dashboards lock rows checkout needs"
    reference = result.reference
    waits = data.table("waits")
    if any(run.meta.get("schema_version", 1) < 2 for run in data.runs):
        return Claim(
            short,
            quote,
            UNTESTED,
            "these results predate the blockers' components "
            "(results schema version 1): any new run records them",
        )
    if waits.empty:
        return Claim(short, quote, UNTESTED, "no session samples (run with collectors on)")
    table = lock_wait_by_blocker(waits, data.windows)
    table = table[table["component"].map(_role) == "commands"]
    by = _blocked_by(table[table["impl"] == reference])
    total = int(table.loc[table["impl"] == reference, "samples"].sum())
    figures = (
        f"on {reference}, checkout's command sessions were seen waiting on a lock held by a "
        f"query session (dashboards among them) in {by['queries']:.0f} samples "
        f"({by['queries'] / ACTIVITY_HZ:.1f} s), by another checkout in {by['commands']:.0f} "
        f"({by['commands'] / ACTIVITY_HZ:.1f} s), by the merchandiser's edits in "
        f"{by['merchandiser']:.0f} ({by['merchandiser'] / ACTIVITY_HZ:.1f} s)"
        + "".join(
            f", by the {role} in {by[role]:.0f} ({by[role] / ACTIVITY_HZ:.1f} s)"
            for role in BACKGROUND
            if by[role]
        )
        + f"; {total} lock-wait samples of checkout's sessions in all, sampled at "
        f"{ACTIVITY_HZ:g} Hz (1 sample = {1 / ACTIVITY_HZ:.1f} s, shorter waits can be missed)"
    )
    others = [
        f"{impl} {_described(part)}"
        for impl, part in table[table["impl"] != reference].groupby("impl", sort=False)
        if part["samples"].sum()
    ]
    if others:
        figures += "; lock-wait samples of the others' checkouts: " + "; ".join(others)
    checkout_at, dashboards_at, report_s = _isolation(data)
    conflicted, conflict_figures = _conflicting(data, result)
    figures = (
        f"checkout at {checkout_at.upper()}, dashboards at {dashboards_at.upper()}"
        + (f" in reports held {report_s:g} s" if report_s else "")
        + f": {figures}{conflict_figures}"
        + (_held_snapshots(data) if report_s else "")
    )
    if by["queries"] > 0:
        return Claim(short, quote, HOLDS, figures + "; mechanism: lock waits behind dashboards")
    if conflicted:
        return Claim(
            short,
            quote,
            HOLDS,
            figures + "; mechanism: serialization failures, the dashboards' predicate locks "
            "(SERIALIZABLE) aborting the checkouts that write what they read; an architecture "
            "whose conflict rate stayed within noise removed it",
        )
    return Claim(
        short,
        quote,
        FAILS,
        figures
        + "; a plain SELECT takes no row locks "
        + (
            "(at REPEATABLE READ a held report snapshot blocks no writer: it holds back vacuum)"
            if report_s
            else "at READ COMMITTED"
        )
        + ", so dashboards slow checkout, where they do, through CPU, I/O and buffers"
        + (" and dead row versions" if report_s else "")
        + ", not locks",
    )


def _slowing(result: Answer) -> Claim:
    quote = "Complex queries are slowing down writes."
    short = "dashboards slow checkout down"
    ref = result.reference
    if result.baseline is None or result.top is None or result.top is result.baseline:
        return Claim(
            short,
            quote,
            UNTESTED,
            "needs stages with and without analysts: the default step run (`cqrs-bench run`)",
        )
    rise = result.rise
    figures = (
        f"{ref}'s checkout p99 {rise.a:.1f} ms with no analysts, {rise.b:.1f} ms at "
        f"{result.top.describe()}: {rise.value:+.1f} ms ({rise.interval})"
    )
    if result.onset is not None and rise.material:
        return Claim(
            short, quote, HOLDS, figures + f"; beyond noise from {result.onset.describe()} on"
        )
    if result.onset is not None:
        return Claim(
            short,
            quote,
            NOT_SHOWN,
            figures + f"; beyond noise but under {MATERIAL:.0%} of the baseline",
        )
    if result.above:
        return Claim(
            short,
            quote,
            NOT_SHOWN,
            figures
            + "; above the baseline beyond noise at "
            + ", ".join(lv.describe() for lv in result.above)
            + " only, not at the "
            "highest load",
        )
    verdict = FAILS if rise.high < 0 else NOT_SHOWN
    return Claim(
        short, quote, verdict, figures + "; a run with more analysts or longer stages would tell"
    )


def _dashboard_samplers(data: Loaded) -> dict:
    frame = measured(data.table("latency"))
    frame = frame[
        (frame["kind"] == headline_kind(frame)) & frame["operation"].str.startswith("dashboard_")
    ]
    return {
        impl: latency_sampler(rows, 99, 1.0, 0.0)
        for impl, rows in frame.groupby("impl")
        if rows["count"].sum()
    }


def _compared(differences: dict[str, Difference], ref: str, better: str) -> tuple[str, str]:
    """The verdict (holds when every one is `better`, lower, beyond noise) and the figures."""
    parts = [
        f"{impl} {d.b:.1f} ms, {d.relative(f'{ref} ({d.a:.1f} ms)')}"
        for impl, d in differences.items()
    ]
    if all(d.high < 0 and d.material for d in differences.values()):
        verdict = HOLDS
    elif any(d.low > 0 and d.material for d in differences.values()):
        verdict = FAILS
    else:
        verdict = NOT_SHOWN
    return verdict, f"{better}: " + "; ".join(parts)


def _fast_queries(data: Loaded, ref: str) -> Claim:
    quote = "Your read model can be denormalized and tuned for fast queries."
    short = "read models make dashboards fast"
    samplers = _dashboard_samplers(data)
    if ref not in samplers or len(samplers) < 2:
        return Claim(short, quote, UNTESTED, f"needs dashboards on {ref} and a CQRS variant")
    differences = {
        impl: difference(samplers[ref], s)
        for impl, s in samplers.items()
        if impl != ref and _read_model(impl)
    }
    if not differences:
        return Claim(short, quote, UNTESTED, f"needs dashboards on {ref} and a read model")
    verdict, figures = _compared(differences, ref, "dashboard p99 over the measured window")
    return Claim(short, quote, verdict, figures)


def _background(result: Answer, evidence: pd.DataFrame) -> Claim:
    quote = "The user gets a fast response. The read model updates in the background."
    short = "async updates keep checkout fast"
    ref = result.reference
    if not result.at_baseline:
        return Claim(
            short,
            quote,
            UNTESTED,
            f"needs a stage without analysts and {ref} beside a CQRS variant: the default step run",
        )
    asynchronous = {i: d for i, d in result.at_baseline.items() if _read_model(i, "asynchronous")}
    if not asynchronous:
        return Claim(short, quote, UNTESTED, f"needs {ref} beside an asynchronous read model")
    parts = [
        f"{impl} {d.b:.1f} ms, {d.relative(f'{ref} ({d.a:.1f} ms)')}"
        for impl, d in asynchronous.items()
    ]
    slower = any(d.low > 0 and d.material for d in asynchronous.values())
    fresh = _asynchronous(evidence).groupby("impl").mean(numeric_only=True)["freshness_p95_ms"]
    fresh = fresh.dropna()
    figures = (
        "checkout p99 with no analysts (the outbox's cost): "
        + "; ".join(parts)
        + (
            "; the read models trailed by "
            + ", ".join(f"{impl} {v:.1f} ms" for impl, v in fresh.items())
            + " at p95 (freshness)"
            if len(fresh)
            else ""
        )
    )
    return Claim(short, quote, FAILS if slower else HOLDS, figures)


def _behind(evidence: pd.DataFrame) -> Claim:
    quote = "Your read model will be slightly behind the write model."
    short = "the read model is only slightly behind"
    pooled = _asynchronous(evidence).groupby("impl", sort=False).mean(numeric_only=True)
    lagging = pooled[pooled["freshness_p99_ms"].notna()]
    if lagging.empty:
        return Claim(
            short, quote, UNTESTED, "needs an asynchronous read model measured with collectors on"
        )
    parts = [
        f"{impl}: dashboards' data {row['freshness_p95_ms']:.1f} ms old at p95, "
        f"{row['freshness_p99_ms']:.1f} ms at p99; own orders visible in "
        f"{row['ryw_p99_ms']:.1f} ms at p99"
        for impl, row in lagging.iterrows()
    ]
    slight = (lagging["freshness_p99_ms"] <= SLIGHTLY_BEHIND_MS).all()
    return Claim(
        short,
        quote,
        HOLDS if slight else FAILS,
        "; ".join(parts) + f' ("slightly" taken as under {SLIGHTLY_BEHIND_MS:.0f} ms at p99)',
    )


def _logical_first(result: Answer) -> Claim:
    quote = (
        "Start with logical separation. You don't need separate databases on day one. ... "
        "Then add the infrastructure complexity only when you need it."
    )
    short = "start with logical separation"
    logical = _first(result.levels, read_model="asynchronous", separate_read_server=False)
    physical = _first(result.levels, read_model="asynchronous", separate_read_server=True)
    found = [lv for lv in result.levels if logical in lv.checkout and physical in lv.checkout]
    if not (logical and physical and found):
        return Claim(
            short,
            quote,
            UNTESTED,
            "needs asynchronous read models in the write server's database and on a server "
            "of their own in one run",
        )
    parts, paid = [], []
    for level in found:
        d = difference(level.checkout[logical], level.checkout[physical])
        parts.append(
            f"at {level.describe()}: {physical} {d.b:.1f} ms, "
            f"{d.relative(f'{logical} ({d.a:.1f} ms)')}"
        )
        if d.high < 0 and d.material:
            paid.append(level)
    figures = (
        "checkout p99 " + "; ".join(parts) + ". Both servers shared this machine's "
        "cores, so the second server took CPU from the same pool: on two hosts the "
        "comparison can differ"
    )
    if not paid:
        return Claim(
            short,
            quote,
            HOLDS,
            figures + f"; here it bought nothing beyond noise and {MATERIAL:.0%}",
        )
    where = ", ".join(level.describe() for level in paid)
    if len(paid) == len(found):
        return Claim(
            short,
            quote,
            FAILS,
            figures + "; physical separation was ahead, beyond noise "
            f"and {MATERIAL:.0%}, at every load measured: logical was never enough",
        )
    return Claim(
        short,
        quote,
        HOLDS,
        figures + f"; physical separation was ahead, beyond noise "
        f"and {MATERIAL:.0%}, only at {where}",
    )


def _synchronous(result: Answer) -> Claim:
    quote = (
        "If you update the read model synchronously after every write, you lose most of the "
        "performance benefits."
    )
    short = "synchronous updates lose the benefit"
    ref = result.reference
    sync = _first(result.levels, read_model="synchronous")
    lazy = _first(result.levels, read_model="asynchronous", separate_read_server=False)
    found = [lv for lv in result.levels if {ref, sync, lazy} <= set(lv.checkout)]
    if not (sync and lazy and found):
        return Claim(
            short,
            quote,
            UNTESTED,
            "needs, at the same loads, an architecture that updates the read model in the "
            "command's transaction beside the baseline and an asynchronous read model in the "
            "same database (the `every-architecture` preset runs them all)",
        )
    level = found[-1]  # the most analysts
    of_ref, of_lazy = f"{ref}'s", f"{lazy}'s"
    benefit = difference(level.checkout[ref], level.checkout[lazy])  # asynchronous − baseline
    kept = difference(level.checkout[ref], level.checkout[sync])  # synchronous − baseline
    lost = difference(level.checkout[lazy], level.checkout[sync])  # synchronous − asynchronous
    figures = (
        f"checkout p99 at {level.describe()}: {ref} {benefit.a:.1f} ms; {lazy} {benefit.b:.1f} ms, "
        f"{benefit.relative(of_ref)}; {sync} {kept.b:.1f} ms, {kept.relative(of_ref)}, "
        f"{lost.relative(of_lazy)}"
    )
    if result.baseline and {ref, sync} <= set(result.baseline.checkout):
        idle = difference(result.baseline.checkout[ref], result.baseline.checkout[sync])
        before = f"{of_ref} ({idle.a:.1f} ms)"
        figures += f". With no analysts, {sync} {idle.b:.1f} ms: {idle.relative(before)}"
    if not (benefit.high < 0 and benefit.material):
        return Claim(
            short,
            quote,
            NOT_SHOWN,
            figures + "; the asynchronous read model bought checkout nothing beyond noise and "
            f"{MATERIAL:.0%} at this load, so there was no benefit to lose",
        )
    share = kept.value / benefit.value  # of the asynchronous benefit, what synchronous kept
    if not (lost.low > 0 and lost.material):
        return Claim(
            short,
            quote,
            FAILS,
            figures + f"; updating synchronously kept the benefit ({share:.0%} of it, point "
            f"estimates): no loss beyond noise and {MATERIAL:.0%}",
        )
    verdict = HOLDS if share < 0.5 else FAILS
    return Claim(
        short,
        quote,
        verdict,
        figures + f"; it kept {max(share, 0):.0%} of the asynchronous read model's benefit "
        "(point estimates): " + ("most of it was lost" if share < 0.5 else "less than half lost"),
    )


def _read_model(impl: str, kind: str | None = None) -> bool:
    """Whether `impl` keeps a read model of its own (of this kind: "asynchronous" or
    "synchronous"). A standby or materialized views over the write tables are not one: claims
    about read models leave them out (the answer and the decision record compare them)."""
    if kind is not None:
        return _declares(impl, read_model=kind)
    return _declares(impl) and not _declares(impl, read_model="write tables")


def _asynchronous(evidence: pd.DataFrame) -> pd.DataFrame:
    """The evidence rows of asynchronous read models."""
    return evidence[evidence["impl"].map(lambda impl: _read_model(impl, "asynchronous"))]


def _declares(impl: str, **capabilities) -> bool:
    """Whether `impl`'s architecture.toml declares these capabilities (False for an
    architecture this tree no longer has)."""
    known = registry.architectures().get(impl)
    return known is not None and all(getattr(known, k) == v for k, v in capabilities.items())


def _first(levels: list[Level], **capabilities) -> str | None:
    """The first architecture, in the registry's order, measured at some level and declaring
    these capabilities."""
    measured = {i for level in levels for i in level.checkout}
    return next(
        (i for i in registry.names() if i in measured and _declares(i, **capabilities)), None
    )


@once
def claims(data: Loaded) -> list[Claim]:
    """Every claim, in the article's order of argument, tested against the runs of `data`."""
    result, table = answer(data), evidence(data)
    return [
        _locks(data, result),
        _slowing(result),
        _fast_queries(data, result.reference),
        _background(result, table),
        _behind(table),
        _logical_first(result),
        _synchronous(result),
    ]


def markdown(found: list[Claim]) -> str:
    """The report's Claims section body."""
    lines = [
        "Each claim of the article that started the project, tested against this run. "
        '"Not shown": the figures that would show it are within noise (their 95% interval '
        "includes 0).",
        "",
    ]
    for i, claim in enumerate(found, 1):
        lines += [f'{i}. *"{claim.quote}"*  ', f"   **{claim.verdict}**: {claim.figures}.", ""]
    return "\n".join(lines)


def table(found: list[Claim]) -> str:
    """The run summary's compact table: claim and verdict."""
    width = max(len(c.short) for c in found)
    return "\n".join(f"  {c.short:<{width}}  {c.verdict}" for c in found)


__all__ = ["Claim", "claims", "markdown", "table"]
