"""What changed between two runs, with the run-to-run noise taken into account.

Method (a block bootstrap, kept simple):

1. The measure phase of each run is cut into blocks of `block_s` seconds (default 1 s): per block,
   the merged HdrHistogram of the operation (latency) or the freshness samples of the queries
   that started in it.
2. For each run separately, `resamples` times (default 1000), as many blocks as it has are drawn
   with replacement and the figure (e.g. checkout p99, exactly from the merged histograms) is
   computed on the draw. The difference B − A of two independent draws gives the bootstrap
   distribution of the change; its 2.5 and 97.5 percentiles are the 95% interval.
3. A change is *significant* when that interval excludes 0, i.e. it exceeds what resampling the
   runs' own seconds produces. It is a *regression* (the gate) when it is significant, slower,
   and larger than `threshold` (relative to A, default 10%) and than `min_ms` (default 1 ms).

Gated figures: checkout p99, dashboard p99 (all dashboard queries merged), freshness p95 (CQRS).
Checkout p50 and the checkout rate are shown but never gate. Latency is the run's headline kind:
`intended` when it was open loop (coordinated omission corrected), else `service`.

Limits, said plainly: consecutive seconds are not independent (a slow second tends to follow a
slow second), so 1-second blocks understate the noise somewhat; use longer blocks (`--block 5`)
for long runs. The noise seen is within-run noise: a change of machine or of background load
between runs is not in it, which is why the configurations are compared too and a different
machine is reported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd

from harness.analysis.latency import (
    DASHBOARD,
    Buckets,
    headline_kind,
    measured,
    value_at_percentile,
    with_dashboard,
)
from harness.analysis.load import Run, in_measure, measure_windows


@dataclass(frozen=True)
class Metric:
    name: str
    source: str  # "latency" or "freshness"
    operation: str
    percentile: float
    gated: bool


METRICS = (
    Metric("checkout p99 ms", "latency", "checkout", 99, True),
    Metric("dashboard p99 ms", "latency", DASHBOARD, 99, True),
    Metric("freshness p95 ms", "freshness", "", 95, True),
    Metric("checkout p50 ms", "latency", "checkout", 50, False),
)
COLUMNS = [
    "impl",
    "metric",
    "a",
    "b",
    "change",
    "change_pct",
    "ci_low",
    "ci_high",
    "verdict",
    "gated",
    "regression",
]


class Sampler:
    """One figure of one run and implementation, computable on any multiset of its blocks."""

    def __init__(self, blocks: np.ndarray, metric: Metric, data) -> None:
        self.blocks, self.metric, self.data = blocks, metric, data
        self.ids = np.unique(blocks)

    def value(self, multiplicity: np.ndarray | None = None) -> float:
        weights = (
            np.ones(len(self.blocks))
            if multiplicity is None
            else multiplicity[np.searchsorted(self.ids, self.blocks)]
        )
        if self.metric.source == "latency":
            buckets: Buckets = self.data
            return value_at_percentile(
                buckets.values_us, buckets.total(weights), self.metric.percentile
            )
        values = np.repeat(self.data, weights.astype(int))
        return float(np.percentile(values, self.metric.percentile)) if len(values) else np.nan

    def draws(self, rng: np.random.Generator, resamples: int) -> np.ndarray:
        n = len(self.ids)
        picks = rng.integers(0, n, size=(resamples, n))
        return np.array([self.value(np.bincount(p, minlength=n)) for p in picks])


def _samplers(run: Run, block_s: float) -> dict[tuple[str, str], Sampler]:
    windows = measure_windows([run])
    latency = with_dashboard(measured(run.table("latency")))
    latency = latency[latency["kind"] == headline_kind(latency)]
    latency = latency[latency["count"] > 0]
    freshness = in_measure(run.table("freshness"), "started_at", windows)
    freshness = freshness.merge(windows[["impl", "measure_start"]], on="impl")
    out = {}
    for metric in METRICS:
        if metric.source == "latency":
            rows = latency[latency["operation"] == metric.operation]
            block = ((rows["elapsed_s"] - run.warmup_s) // block_s).astype(int)
            for impl in rows["impl"].unique():
                mine = rows["impl"] == impl
                out[impl, metric.name] = Sampler(
                    block[mine].to_numpy(), metric, Buckets(list(rows.loc[mine, "hdr"]))
                )
        else:
            since = (freshness["started_at"] - freshness["measure_start"]).dt.total_seconds()
            block = (since // block_s).astype(int)
            for impl in freshness["impl"].unique():
                mine = freshness["impl"] == impl
                out[impl, metric.name] = Sampler(
                    block[mine].to_numpy(), metric, freshness.loc[mine, "freshness_ms"].to_numpy()
                )
    return out


def compare_runs(
    a: Run,
    b: Run,
    *,
    threshold: float = 0.10,
    min_ms: float = 1.0,
    block_s: float = 1.0,
    resamples: int = 1000,
    seed: int = 0,
) -> pd.DataFrame:
    """One row per implementation in both runs and figure (see the module's docstring)."""
    if block_s <= 0 or resamples < 100 or threshold < 0:
        raise ValueError("--block must be > 0 s, --resamples ≥ 100 and --threshold ≥ 0")
    rng = np.random.default_rng(seed)
    first, second = _samplers(a, block_s), _samplers(b, block_s)
    rows = []
    for impl in [i for i in a.impls if i in b.impls]:
        for metric in METRICS:
            key = (impl, metric.name)
            if key not in first or key not in second:
                continue
            va, vb = first[key].value(), second[key].value()
            diffs = second[key].draws(rng, resamples) - first[key].draws(rng, resamples)
            low, high = np.nanpercentile(diffs, [2.5, 97.5])
            change = vb - va
            verdict = "slower" if low > 0 else "faster" if high < 0 else "within noise"
            regression = bool(
                metric.gated and verdict == "slower" and change > min_ms and change > threshold * va
            )
            rows.append(
                {
                    "impl": impl,
                    "metric": metric.name,
                    "a": va,
                    "b": vb,
                    "change": change,
                    "change_pct": 100 * change / va if va else np.nan,
                    "ci_low": low,
                    "ci_high": high,
                    "verdict": verdict,
                    "gated": metric.gated,
                    "regression": regression,
                }
            )
    return pd.DataFrame(rows, columns=COLUMNS)


def config_changes(a: Run, b: Run) -> list[str]:
    """What differs in how the two runs were made: configuration, code, machine, dataset."""
    changes = []
    for key in sorted(set(a.config) | set(b.config)):
        if key in ("experiment", "results_root"):
            continue
        if a.config.get(key) != b.config.get(key):
            changes.append(f"config.{key}: {a.config.get(key)!r} -> {b.config.get(key)!r}")
    for section, keys in (
        ("git", ("commit", "dirty")),
        ("machine", ("hostname", "cpu_model", "logical_cpus")),
        ("dataset", ("sf", "seed", "checksum")),
    ):
        left, right = a.meta.get(section) or {}, b.meta.get(section) or {}
        for key in keys:
            if left.get(key) != right.get(key):
                changes.append(f"{section}.{key}: {left.get(key)!r} -> {right.get(key)!r}")
    if a.impls != b.impls:
        changes.append(f"impls: {a.impls} -> {b.impls}")
    return changes


def format_comparison(table: pd.DataFrame, a: Run, b: Run, changes: list[str]) -> str:
    """The comparison as text: what changed in the set-up, then one line per figure."""
    lines = [f"A: {a.label}", f"B: {b.label}"]
    lines += (
        (["set-up changes:"] + [f"  {c}" for c in changes])
        if changes
        else ["set-up changes: none (same configuration, code, machine and dataset)"]
    )
    header = (
        f"{'impl':<14} {'figure':<17} {'A':>9} {'B':>9} {'change':>9} {'%':>7} "
        f"{'95% interval':>20}  verdict"
    )
    lines.append(header)
    for row in table.itertuples():
        pct = "" if np.isnan(row.change_pct) else f"{row.change_pct:+.0f}%"
        interval = f"[{row.ci_low:+.1f}, {row.ci_high:+.1f}]"
        verdict = row.verdict + (" REGRESSION" if row.regression else "")
        verdict += "" if row.gated else " (not gated)"
        lines.append(
            f"{row.impl:<14} {row.metric:<17} {row.a:>9.1f} {row.b:>9.1f} "
            f"{row.change:>+9.1f} {pct:>7} {interval:>20}  {verdict}"
        )
    return "\n".join(lines)


def latency_sampler(
    rows: pd.DataFrame, percentile: float, block_s: float, origin_s: float
) -> Sampler:
    """A Sampler of `percentile` over latency rows (one implementation), blocks of `block_s`
    seconds from elapsed `origin_s`; rows of several runs (rounds) keep their blocks apart."""
    metric = Metric(f"p{percentile:g} ms", "latency", "", percentile, False)
    rows = rows[rows["count"] > 0]
    blocks = ((rows["elapsed_s"] - origin_s) // block_s).astype(np.int64).to_numpy()
    if "run" in rows:
        blocks = blocks + pd.factorize(rows["run"])[0].astype(np.int64) * 10**9
    return Sampler(blocks, metric, Buckets(list(rows["hdr"])))


def difference_interval(
    a: Sampler, b: Sampler, resamples: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """95% bootstrap interval of b − a (see the module's docstring)."""
    rng = np.random.default_rng(seed)
    diffs = b.draws(rng, resamples) - a.draws(rng, resamples)
    low, high = np.nanpercentile(diffs, [2.5, 97.5])
    return float(low), float(high)


def bootstrap_interval(
    values: np.ndarray,
    statistic: Callable[..., np.ndarray] = np.mean,
    resamples: int = 1000,
    seed: int = 0,
) -> tuple[float, float]:
    """95% bootstrap interval of `statistic` (called with axis=1 on the resamples, one per row) of
    `values`, drawn with replacement (NaN without any)."""
    values = np.asarray(values, dtype=float)
    if len(values) == 0:
        return float("nan"), float("nan")
    picks = np.random.default_rng(seed).integers(0, len(values), size=(resamples, len(values)))
    low, high = np.percentile(statistic(values[picks], axis=1), [2.5, 97.5])
    return float(low), float(high)


def mean_interval(values: np.ndarray, resamples: int = 1000, seed: int = 0) -> tuple[float, float]:
    """95% bootstrap interval of the mean of per-second `values`, the seconds drawn with
    replacement (NaN without any)."""
    return bootstrap_interval(values, np.mean, resamples, seed)


def mean_difference_interval(
    a: np.ndarray, b: np.ndarray, resamples: int = 1000, seed: int = 0
) -> tuple[float, float]:
    """95% bootstrap interval of mean(b) − mean(a), each resampled over its own values (seconds)."""
    rng = np.random.default_rng(seed)
    draws = [np.asarray(v, dtype=float) for v in (a, b)]
    means = [v[rng.integers(0, len(v), size=(resamples, len(v)))].mean(axis=1) for v in draws]
    low, high = np.percentile(means[1] - means[0], [2.5, 97.5])
    return float(low), float(high)
