"""`cqrs-bench results validate | schema`: check run directories, print the results format."""

from __future__ import annotations

from pathlib import Path

import typer

from harness.results.schema import README, describe_markdown, with_generated_section
from harness.results.validate import check_run, is_run_dir

app = typer.Typer(help="Check run directories against the results format, or print the format.")


@app.command()
def validate(
    run_dirs: list[Path] = typer.Argument(
        ...,
        metavar="RUN_DIR",
        help="Run directories (results/<experiment>/<run>/, each holding run.json).",
        show_default=False,
    ),
) -> None:
    """Check run directories against the results format; exit 1 if any has a problem.

    Prints OK, or every problem. Warnings (undocumented files; what an incomplete run lacks)
    are printed but do not fail. The format: harness/results/schema.py, results/README.md.
    """
    not_runs = [p for p in run_dirs if not is_run_dir(p)]
    if not_runs:
        hints = []
        for p in not_runs:
            if not p.exists():
                hints.append(f"{p} does not exist")
            elif not p.is_dir():
                hints.append(f"{p} is not a directory")
            elif any(is_run_dir(child) for child in p.iterdir() if child.is_dir()):
                hints.append(f"{p} is an experiment directory; pass its runs ({p}/*)")
            else:
                hints.append(f"{p} is not a run directory (no run.json)")
        raise ValueError("; ".join(hints))
    failed = False
    for run_dir in run_dirs:
        report = check_run(run_dir)
        if report.ok:
            state = report.status or "unknown status"
            if report.status == "incomplete":
                state = f"incomplete: {report.incomplete_reason}"
            typer.echo(f"{run_dir}: OK ({state})")
        else:
            failed = True
            count = len(report.problems)
            typer.echo(f"{run_dir}: {count} problem{'s' if count != 1 else ''}")
            for problem in report.problems:
                typer.echo(f"  - {problem}")
        for warning in report.warnings:
            typer.echo(f"  warning: {warning}")
    if failed:
        raise typer.Exit(1)


@app.command("schema")
def schema_command(
    write: bool = typer.Option(
        False, "--write", help="Regenerate that part of results/README.md instead of printing it."
    ),
) -> None:
    """Print the results format as Markdown (the generated part of results/README.md).

    Tables, columns, other files and run.json keys, from harness/results/schema.py.
    """
    if write:
        README.write_text(with_generated_section(README.read_text(encoding="utf-8")), "utf-8")
        typer.echo(f"updated {README}")
    else:
        typer.echo(describe_markdown(), nl=False)
