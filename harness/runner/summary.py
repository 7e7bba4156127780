"""What a run ends with: the answer (harness/analysis/answer.py), the evidence table in short, and
the article's claims with their verdicts (harness/analysis/claims.py)."""

from __future__ import annotations

import math
import textwrap

from harness.analysis import answer, claims
from harness.analysis.evidence import evidence
from harness.analysis.load import Loaded, Run

# evidence column -> (heading, format, width)
COLUMNS = {
    "impl": ("impl", "{}", 14),
    "checkout_rate_per_s": ("checkout/s", "{:.0f}", 10),
    "checkout_p50_ms": ("co p50 ms", "{:.1f}", 9),
    "checkout_p99_ms": ("co p99 ms", "{:.1f}", 9),
    "peak_dashboard_rate_per_s": ("dash/s", "{:.1f}", 7),
    "dashboard_p99_ms": ("dash p99 ms", "{:.1f}", 11),
    "errors": ("errors", "{:.0f}", 6),
    "conflicts_pct": ("conflict %", "{:.1f}", 10),
    "lock_wait_s": ("lock wait s", "{:.2f}", 11),
    "lag_p99_ms": ("lag p99 ms", "{:.1f}", 10),
    "freshness_p95_ms": ("fresh p95 ms", "{:.1f}", 12),
    "ryw_p99_ms": ("ryw p99 ms", "{:.1f}", 10),
    "cores": ("cpu cores", "{:.2f}", 9),
    "storage_mb": ("storage MB", "{:.0f}", 10),
}
NOTES = (
    "co = checkout, dash = dashboard queries (all three; the rate at the most analysts), over "
    "the measurement window; conflict % = checkouts' retries and failures after them, for a "
    "serialization failure, a deadlock or a version conflict, per 100 checkouts; lock wait s = "
    "session-seconds waiting on a Lock (sampled); lag = time lag per source commit; fresh = "
    "freshness seen by dashboard queries; ryw = read-your-writes visibility (probe); cpu cores = "
    "servers, service, projector or refresher; storage = the run's databases, less the "
    "dataset tables the architecture never uses"
)
PARTIAL = (
    "PARTIAL: the run was stopped early; these figures cover only what was measured before "
    "it stopped (run.json: status incomplete, incomplete_reason says why)"
)


def summary_table(data: Loaded, *, partial: bool = False) -> str:
    """The answer, then fixed-width text, one line per run and architecture (`-` where a
    figure does not apply), then the claims; a run that stopped early (`partial`) is labelled so
    on the first line. Several runs (rounds) are pooled."""
    label = [PARTIAL] if partial else []
    try:
        table = evidence(data)
        found = answer.answer(data)
        verdicts = claims.table(claims.claims(data))
    except (ValueError, KeyError, OSError) as exc:
        return "\n".join([*label, f"(no summary: {exc})"])
    several = table["run"].nunique() > 1
    columns = (
        {"run": ("run", "{}", max(len(r) for r in table["run"]))} if several else {}
    ) | COLUMNS
    lines = ["  ".join(f"{heading:>{width}}" for heading, _, width in columns.values())]
    for _, row in table.iterrows():
        cells = []
        for column, (_, fmt, width) in columns.items():
            value = row[column]
            missing = isinstance(value, float) and math.isnan(value)
            cells.append(f"{'-' if missing else fmt.format(value):>{width}}")
        lines.append("  ".join(cells))
    return "\n".join(
        [
            *label,
            "ANSWER",
            *[textwrap.fill(p, 100, break_on_hyphens=False) for p in found.text.split("\n\n")],
            "",
            *lines,
            *drifted(data.runs),
            textwrap.fill(NOTES, 100, break_on_hyphens=False),
            "",
            "THE ARTICLE'S CLAIMS (report: Claims)",
            verdicts,
        ]
    )


def drifted(runs: list[Run]) -> list[str]:
    """A line per implementation whose read models differed from its write model after the load
    (run.json `reconciliation`)."""
    out = []
    for run in runs:
        impls = run.meta.get("impls")
        for impl, info in impls.items() if isinstance(impls, dict) else ():
            found = (info or {}).get("reconciliation") or {}
            if found.get("mismatches"):
                out.append(
                    f"READ MODELS DRIFTED: {impl} ({run.label}): {found['mismatches']} of "
                    f"{found['tables']} read-model tables differ from the write model after "
                    "the load (verification.parquet, phase after)"
                )
    return out
