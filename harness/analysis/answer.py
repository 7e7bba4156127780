"""The answer a run gives to the project's question, from its numbers, with their uncertainty.

"Would CQRS fix our checkout latency, which kind, and at what cost in freshness?" The answer
says, from the seconds grouped by how many analysts were running (the `users` table):

1. from which dashboard load the baseline's checkout p99 leaves its no-analyst baseline (the first level
   whose difference from the baseline has a 95% interval above 0), and whether that baseline was
   steady (its first half against its second half);
2. at the highest load, each other architecture's checkout p99 against the baseline's, as a difference
   with its 95% interval;
3. what that costs: freshness p95/p99, read-your-writes p99, storage and CPU;
4. the levels where the service, the load generator or the whole machine ran at its CPU limit
   (harness/analysis/bottlenecks.py): such a level measured them, not the architecture.

Every interval is a block bootstrap over the seconds (harness/analysis/compare.py): 1-second
blocks of every run and round pooled, resampled with replacement. A difference whose interval
includes 0 is "within noise" and is never written as a gain or a loss.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from harness.analysis import bottlenecks, resources
from harness.analysis.compare import (
    Sampler,
    difference_interval,
    latency_sampler,
    mean_difference_interval,
)
from harness.analysis.evidence import evidence
from harness.analysis.interference import curve, measured_by_analysts
from harness.analysis.load import Loaded, once
from implementations import registry

MATERIAL, MATERIAL_MS = (
    0.10,
    1.0,
)  # what a difference must reach to decide a verdict (as compare's gate)


@dataclass(frozen=True)
class Difference:
    """b − a with its 95% bootstrap interval."""

    a: float
    b: float
    low: float
    high: float
    unit: str = "ms"
    digits: int = 1

    @property
    def value(self) -> float:
        return self.b - self.a

    @property
    def beyond_noise(self) -> bool:
        return self.low > 0 or self.high < 0

    @property
    def material(self) -> bool:
        """Beyond noise and at least MATERIAL of the figure compared with (and MATERIAL_MS): big
        enough to decide a claim's verdict (a clear 1 ms is not a reason to change design)."""
        least = MATERIAL * abs(self.a)
        if self.unit == "ms":
            least = max(least, MATERIAL_MS)
        return self.beyond_noise and abs(self.value) >= least

    @property
    def interval(self) -> str:
        d = self.digits
        return f"95% interval {self.low:+.{d}f} to {self.high:+.{d}f} {self.unit}"

    def relative(self, what: str, higher: str = "higher", lower: str = "lower") -> str:
        """'41.0 ms lower than the baseline's (95% interval ...)' or 'within noise of the baseline's (...)'."""
        d = self.digits
        if not self.beyond_noise:
            return f"within noise of {what} ({self.value:+.{d}f} {self.unit}, {self.interval})"
        word = higher if self.value > 0 else lower
        return f"{abs(self.value):.{d}f} {self.unit} {word} than {what} ({self.interval})"


def difference(a: Sampler, b: Sampler) -> Difference:
    low, high = difference_interval(a, b)
    return Difference(a.value(), b.value(), low, high)


@dataclass(frozen=True)
class Level:
    """One number of analysts: per architecture, checkout's sampler, and the dashboard rate and
    the seconds of the interference curve's points at that number, pooled over the runs."""

    analysts: float
    checkout: dict[str, Sampler]
    dashboard_rate: dict[str, float]
    seconds: dict[str, int]

    def describe(self) -> str:
        rate = np.mean(list(self.dashboard_rate.values())) if self.dashboard_rate else 0.0
        return (
            f"{self.analysts:.0f} analyst{'s' * (self.analysts != 1)} "
            f"(~{rate:.1f} dashboard queries/s)"
        )


def levels(data: Loaded) -> list[Level]:
    """The measured seconds (`measured_by_analysts`) grouped by the number of analysts running,
    lowest first; the rates are the interference curve's."""
    frame, points = measured_by_analysts(data), curve(data)
    out = []
    for analysts, level in frame.groupby("analysts"):
        checkout, dash, seconds = {}, {}, {}
        for impl, part in level.groupby("impl", sort=False):
            rows = part[part["operation"] == "checkout"]
            if rows["count"].sum() == 0:
                continue
            checkout[impl] = latency_sampler(rows, 99, 1.0, 0.0)
            mine = points[(points["analysts"] == analysts) & (points["impl"] == impl)]
            seconds[impl] = int(mine["seconds"].sum())
            dash[impl] = (mine["dashboard_rate_per_s"] * mine["seconds"]).sum() / seconds[impl]
        if checkout:
            out.append(Level(float(analysts), checkout, dash, seconds))
    return out


def halves(frame: pd.DataFrame, level: Level, impl: str) -> Difference | None:
    """Checkout p99 in the second half of `level`'s seconds of `frame` (`measured_by_analysts`)
    against the first half (each run's seconds halved apart), for `impl`: a steady baseline
    shows no difference beyond noise."""
    frame = frame[
        (frame["impl"] == impl)
        & (frame["operation"] == "checkout")
        & (frame["analysts"] == level.analysts)
    ]
    if frame.groupby("run")["second"].nunique().min() < 4:
        return None
    middle = frame.groupby("run")["second"].transform(
        lambda s: np.sort(s.unique())[s.nunique() // 2]
    )
    first, second = frame[frame["second"] < middle], frame[frame["second"] >= middle]  # per run
    return difference(latency_sampler(first, 99, 1.0, 0.0), latency_sampler(second, 99, 1.0, 0.0))


@dataclass
class Answer:
    reference: str
    baseline: Level | None  # the level with no analysts (None: the run had none)
    top: Level | None  # the level with the most analysts
    steady: Difference | None  # the reference's baseline, second half against first
    onset: Level | None  # the level from which on the reference stayed above its baseline
    rise: Difference | None  # the reference at the top against its baseline
    versus: dict[str, Difference] = field(default_factory=dict)  # at the top, against reference
    at_baseline: dict[str, Difference] = field(default_factory=dict)  # with no analysts
    above: list[Level] = field(default_factory=list)  # levels above its baseline beyond noise
    levels: list[Level] = field(default_factory=list)  # every level, lowest first
    cpu: dict[str, Difference] = field(default_factory=dict)  # cores, against the reference
    text: str = ""


@once
def answer(data: Loaded) -> Answer:
    """The answer of the runs of `data`."""
    found = levels(data)
    impls = list(dict.fromkeys(i for r in data.runs for i in r.impls))
    baseline = registry.baseline()  # what the others are compared with, when the run has it
    reference = baseline if baseline in impls else (impls[0] if impls else baseline)
    result = Answer(reference, None, None, None, None, None, levels=found)
    mine = [lv for lv in found if reference in lv.checkout]
    if not mine:
        result.text = (
            "No answer: these results do not count the analysts running each second (the "
            "users table, recorded since results schema version 2), so their seconds cannot be "
            "grouped by dashboard load."
            if data.table("users").empty
            else f"No answer: no checkout was measured on {reference}, so nothing can be compared."
        )
        return result
    result.top = mine[-1]
    if mine[0].analysts == 0:
        result.baseline = base = mine[0]
        result.steady = halves(measured_by_analysts(data), base, reference)
        for level in mine[1:]:
            result.rise = difference(base.checkout[reference], level.checkout[reference])
            if result.rise.low > 0:
                result.above.append(level)
                result.onset = result.onset or level
            else:
                result.onset = None  # "from X on" only when every level after X is above too
        for impl, sampler in base.checkout.items():
            if impl != reference:
                result.at_baseline[impl] = difference(base.checkout[reference], sampler)
    for impl, sampler in result.top.checkout.items():
        if impl != reference:
            result.versus[impl] = difference(result.top.checkout[reference], sampler)
    result.cpu = cpu_differences(data, reference)
    result.text = _paragraph(result, evidence(data), bottlenecks.flags(data))
    return result


def cpu_differences(data: Loaded, reference: str) -> dict[str, Difference]:
    """Per architecture, its mean cores over the measured seconds against the reference's
    (bootstrap over the seconds; see resources.cpu_per_second)."""
    per_second = resources.cpu_per_second(data.table("resources"), data.windows)
    if per_second.empty:
        return {}
    by_impl = {impl: part.to_numpy() for impl, part in per_second.groupby(level="impl")}
    if reference not in by_impl:
        return {}
    base, out = by_impl[reference], {}
    for impl, values in by_impl.items():
        if impl != reference:
            low, high = mean_difference_interval(base, values)
            out[impl] = Difference(
                float(base.mean()), float(values.mean()), low, high, unit="cores", digits=2
            )
    return out


def ms(value: float | None) -> str:
    """A figure in milliseconds, or n/a."""
    return (
        "n/a"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else f"{value:.1f} ms"
    )


def _interference(result: Answer) -> list[str]:
    ref, top, base = result.reference, result.top, result.baseline
    if base is None:
        return [
            f"This run had no stage without analysts, so it cannot say from which dashboard "
            f"load {ref}'s checkout degrades (run the default step shape: `cqrs-bench run`)."
        ]
    steady = ""
    if result.steady is not None and not result.steady.beyond_noise:
        steady = " (steady: the stage's two halves within noise of each other)"
    out = [f"With no analysts, {ref}'s checkout p99 was {ms(base.checkout[ref].value())}{steady}."]
    if result.steady is not None and result.steady.beyond_noise:
        out.append(
            f"That baseline was not steady: its second half differed from its first by "
            f"{result.steady.value:+.1f} ms ({result.steady.interval}); read what follows "
            f"with care, and give the run a longer warm-up (--warmup)."
        )
    if top is base:
        out.append("The run had no stage with analysts: it cannot show interference.")
    elif not result.above:
        out.append(
            f"Up to {top.describe()} it did not leave that baseline beyond noise "
            f"(at the highest load: {ms(top.checkout[ref].value())}, "
            f"{result.rise.value:+.1f} ms, {result.rise.interval})."
        )
    elif result.onset is None:
        out.append(
            f"It was above that baseline beyond noise at "
            f"{', '.join(lv.describe() for lv in result.above)} but not at the highest "
            f"load, {top.describe()}: {ms(top.checkout[ref].value())}, "
            f"{result.rise.value:+.1f} ms ({result.rise.interval})."
        )
    else:
        out.append(
            f"It left that baseline from {result.onset.describe()} on: at "
            f"{top.describe()} it was {ms(top.checkout[ref].value())}, "
            f"{result.rise.value:+.1f} ms ({result.rise.interval})."
        )
    return out


def _versus(result: Answer) -> list[str]:
    ref, top = result.reference, result.top
    if not result.versus:
        return [f"Only {ref} was measured: there is nothing to compare it with."]
    parts = [
        f"{impl}'s {ms(d.b)}: {d.relative(ref + chr(39) + 's')}"
        for impl, d in result.versus.items()
    ]
    out = [
        f"At {top.describe()}, {ref}'s checkout p99 was {ms(top.checkout[ref].value())}; "
        f"{'; '.join(parts)}."
    ]
    if not any(d.beyond_noise for d in result.versus.values()):
        out.append(
            "No architecture's checkout p99 differed from the others' beyond noise at "
            "this load. A run that would tell: more dashboard load (a shape whose last "
            "stage has more analysts), longer stages (--duration), or more rounds "
            "(--repeat 3)."
        )
    return out


def _costs(result: Answer, evidence: pd.DataFrame) -> list[str]:
    pooled = evidence.groupby("impl", sort=False).mean(numeric_only=True)
    ref = result.reference
    out = []
    for impl in result.versus:
        if impl not in pooled.index:
            continue
        row, parts = pooled.loc[impl], []
        if not math.isnan(row.get("freshness_p95_ms", math.nan)):
            parts.append(
                f"dashboards read data {ms(row['freshness_p95_ms'])} old at p95 "
                f"({ms(row['freshness_p99_ms'])} at p99)"
            )
        if not math.isnan(row.get("ryw_p99_ms", math.nan)):
            parts.append(
                f"a shopper's own order reached the read side in {ms(row['ryw_p99_ms'])} at p99"
            )
        if ref in pooled.index and not math.isnan(row.get("storage_mb", math.nan)):
            base = pooled.loc[ref, "storage_mb"]
            parts.append(
                f"{row['storage_mb']:.0f} MB of storage against {base:.0f} MB "
                f"({row['storage_mb'] / base:.1f}x)"
            )
        cpu = result.cpu.get(impl)
        if cpu is not None:
            parts.append(
                f"its servers, service and background processes used {cpu.b:.2f} cores, "
                f"{cpu.relative(ref + chr(39) + 's', 'more', 'fewer')}"
            )
        if parts:
            out.append(f"What {impl} costs: {'; '.join(parts)}.")
    return out


def _paragraph(result: Answer, evidence: pd.DataFrame, limits: list[str] = ()) -> str:
    """Short paragraphs (blank-line separated): interference, the comparison, the costs, and the
    levels where the service, the load generator or the machine was at its CPU limit."""
    flagged = [f"Bottlenecks (report: Bottlenecks): {' '.join(limits)}"] if limits else []
    parts = [_interference(result), _versus(result), _costs(result, evidence), flagged]
    return "\n\n".join(" ".join(p) for p in parts if p)


__all__ = [
    "Answer",
    "Difference",
    "Level",
    "answer",
    "difference",
    "halves",
    "levels",
    "ms",
]
