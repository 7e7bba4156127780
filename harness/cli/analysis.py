"""`cqrs-bench report` and `cqrs-bench compare`: the analysis of run directories."""

from __future__ import annotations

from pathlib import Path

import typer

from harness.analysis import compare as comparing
from harness.analysis.load import Loaded, load_run, load_runs
from harness.analysis.report import write_report
from harness.cli.run import default_results


def notebook_runs(runs: str | list[str]) -> Loaded:
    """The runs a notebook's `runs` parameter names, loaded together: a list of run directories,
    experiment directories or globs, or one string of them separated by commas (as papermill's
    `-p runs 'results/quick/*'` passes it). Relative paths are from the checkout's root, so
    papermill, nbconvert and Jupyter read the same runs, started from the root or notebooks/ (an
    absolute path stays as it is)."""
    paths = [str(path).strip() for path in (runs.split(",") if isinstance(runs, str) else runs)]
    root = default_results().parent
    return Loaded(load_runs([root / path for path in paths if path]))


def report(
    run_dirs: list[Path] = typer.Argument(
        ...,
        metavar="RUN_DIR...",
        help="Run directories, experiment directories (all their runs) or globs.",
        show_default=False,
    ),
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Directory for report.md and its PNG charts [default: RUN_DIR/report "
        "for one run, results/reports/<UTC time> for several].",
        show_default=False,
    ),
) -> None:
    """Write a Markdown report with charts (latency, interference, frontier, lock contention,
    lag and freshness, CPU) ending in a decision record derived from the numbers."""
    path = write_report(Loaded(load_runs(list(run_dirs))), out)
    typer.echo(f"report: {path}")


def compare(
    run_a: Path = typer.Argument(
        ..., metavar="RUN_A", help="The baseline run.", show_default=False
    ),
    run_b: Path = typer.Argument(
        ..., metavar="RUN_B", help="The run to judge.", show_default=False
    ),
    fail_on_regression: bool = typer.Option(
        False, "--fail-on-regression", help="Exit 2 when a gated figure regressed."
    ),
    threshold: float = typer.Option(
        0.10, help="Smallest relative slow-down that counts as a regression (0.10 = 10%)."
    ),
    min_ms: float = typer.Option(1.0, help="Smallest absolute slow-down (ms) that counts."),
    block: float = typer.Option(1.0, help="Bootstrap block length in seconds."),
    resamples: int = typer.Option(1000, help="Bootstrap resamples per run."),
) -> None:
    """Say what changed between two runs, with the run-to-run noise taken into account.

    Per architecture: checkout p99, dashboard p99 and freshness p95 (gated), checkout p50.

    Noise: each run's measure phase is cut into --block second blocks and resampled by blocks
    with replacement (--resamples times, figures merged exactly from the HDR histograms); the
    95% interval of the difference B - A is read off.

    A change is significant when that interval excludes 0; a regression when it is also slower
    and larger than --threshold (relative) and --min-ms.

    Consecutive seconds are correlated, so short blocks understate the noise a little: use
    --block 5 on long runs. Exit 0; with --fail-on-regression, exit 2 on a regression, and
    an incomplete run (run.json status) is refused with exit 2: it is no baseline to gate on.
    """
    a, b = load_run(run_a), load_run(run_b)
    incomplete = [
        f"{run.label} is incomplete ({run.meta.get('incomplete_reason') or 'no reason'})"
        for run in (a, b)
        if not run.complete
    ]
    if incomplete and fail_on_regression:
        typer.echo(
            f"error: {'; '.join(incomplete)}: --fail-on-regression gates complete runs only",
            err=True,
        )
        raise typer.Exit(2)
    for problem in incomplete:
        typer.echo(
            f"warning: {problem}: it holds only what was measured before it stopped; "
            "do not read this comparison as one of whole runs"
        )
    table = comparing.compare_runs(
        a, b, threshold=threshold, min_ms=min_ms, block_s=block, resamples=resamples
    )
    typer.echo(comparing.format_comparison(table, a, b, comparing.config_changes(a, b)))
    regressions = table[table["regression"]]
    if len(regressions):
        named = ", ".join(f"{r.impl} {r.metric}" for r in regressions.itertuples())
        typer.echo(f"regression beyond noise and threshold: {named}")
        if fail_on_regression:
            raise typer.Exit(2)
    else:
        typer.echo("no regression beyond noise and threshold")
