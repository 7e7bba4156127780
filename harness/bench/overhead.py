"""The harness's own overhead, measured with the runner itself (one Locust process, the baseline architecture).

1. Ceiling: the request rate one Locust process reaches on /health (no database work, mix
   `noop`), against the request rate the default mix uses: how much of the load generator's
   capacity a run spends, i.e. whether the generator could be the bottleneck.
2. Collectors: checkout throughput with every collector on against all off (mix `checkout-max`,
   no think time), alternated `pairs` times so drift on a shared machine hits both sides;
   the goal is a ratio of at least 0.95.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import pandas as pd

from harness.postgres.servers import Servers
from harness.runner.run import RunPlan, run
from implementations import registry

IMPL = registry.baseline()


@dataclass(frozen=True)
class OverheadResult:
    transport: str
    ceiling_rate: float  # requests/s on /health
    default_rate: float  # requests/s of the default mix
    collectors_on: list[float]  # checkouts/s, one per pair
    collectors_off: list[float]
    runs: list[Path]

    @property
    def ratios(self) -> list[float]:
        return [on / off for on, off in zip(self.collectors_on, self.collectors_off, strict=True)]


def _rates(run_dir: Path) -> tuple[float, float]:
    """(all requests/s, checkouts/s) over the measurement window of a one-implementation run."""
    summary = pd.read_parquet(run_dir / "latency_summary.parquet")
    service = summary[summary["kind"] == "service"]
    total = float(((service["count"] + service["errors"]) / service["seconds"]).sum())
    checkout = float(service.loc[service["operation"] == "checkout", "rate_per_s"].sum())
    return total, checkout


def measure_overhead(
    servers: Servers, base: RunPlan, pairs: int, progress: Callable[[str], None] = print
) -> OverheadResult:
    plan = replace(base, impls=[IMPL], report=False)
    runs = []

    def one(label: str, **changes) -> tuple[float, float]:
        progress(f"--- {label}")
        (run_dir,) = run(
            replace(plan, experiment=f"overhead-{label}", **changes), servers, progress=progress
        )
        runs.append(run_dir)
        return _rates(run_dir)

    ceiling, _ = one("noop", mix="noop", collectors=False)
    default, _ = one("default-mix", mix="mixed", collectors=True)
    on, off = [], []
    for i in range(pairs):  # alternate, so slow drift of the machine hits both sides
        off.append(one(f"collectors-off-{i + 1}", mix="checkout-max", collectors=False)[1])
        on.append(one(f"collectors-on-{i + 1}", mix="checkout-max", collectors=True)[1])
    return OverheadResult(plan.transport, ceiling, default, on, off, runs)


def report(result: OverheadResult) -> str:
    ratios = result.ratios
    mean = sum(ratios) / len(ratios)
    return "\n".join(
        [
            f"harness overhead: one Locust process, {result.transport} transport, {IMPL}",
            f"  ceiling (/health, no database work)  {result.ceiling_rate:9,.0f} requests/s",
            f"  default mix (mixed)                  {result.default_rate:9,.0f} requests/s  "
            f"= {result.default_rate / result.ceiling_rate:.1%} of the ceiling",
            "  checkout-max, checkouts/s with collectors on / off:",
            *(
                f"    pair {i + 1}: {on:8,.0f} / {off:8,.0f} = {on / off:.3f}"
                for i, (on, off) in enumerate(
                    zip(result.collectors_on, result.collectors_off, strict=True)
                )
            ),
            f"  mean ratio {mean:.3f} (goal: at least 0.95)",
            "  runs: " + ", ".join(str(p) for p in result.runs),
        ]
    )
