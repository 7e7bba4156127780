"""Every notebook executes headless against the committed sample run and produces its charts; the
README's papermill command works as written; relative paths resolve from the repository root."""

from __future__ import annotations

import os
import re
import shlex
import subprocess
from pathlib import Path

import nbformat
import papermill
import pytest

from harness.cli.analysis import notebook_runs

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = sorted((ROOT / "results" / "sample" / "sample").iterdir())[-1]  # the committed run
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_the_four_notebooks_exist() -> None:
    assert {p.stem for p in NOTEBOOKS} >= {
        "latency",
        "lock_contention",
        "projection_lag",
        "decision",
    }


def _drew(executed: Path) -> None:
    """The executed notebook raised no error and drew at least one chart."""
    notebook = nbformat.read(executed, as_version=4)
    outputs = [o for c in notebook.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 1


# The notebook the README's papermill command names. It is executed by
# test_the_readme_papermill_command_works_as_written (papermill, from the root, the parameter
# injected) and by test_nbconvert_started_in_notebooks_reads_the_default_runs (a kernel started in
# notebooks/), so test_notebook_runs_headless_and_draws checks its source but does not execute
# it a third time.
EXECUTED_ELSEWHERE = "latency"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_headless_and_draws(notebook: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MPLBACKEND", "Agg")
    source = nbformat.read(notebook, as_version=4)
    assert any("parameters" in c.metadata.get("tags", []) for c in source.cells)
    assert all(not c.get("outputs") for c in source.cells if c.cell_type == "code")
    if notebook.stem == EXECUTED_ELSEWHERE:
        return
    out = tmp_path / notebook.name
    # Started in notebooks/ (as nbconvert and Jupyter start a kernel), a path from the root.
    papermill.execute_notebook(
        str(notebook),
        str(out),
        parameters={"runs": str(SAMPLE.relative_to(ROOT))},
        cwd=str(notebook.parent),
        kernel_name="python3",
        progress_bar=False,
    )
    _drew(out)


def test_the_readme_papermill_command_works_as_written(tmp_path: Path) -> None:
    readme = (ROOT / "README.md").read_text()
    (command,) = re.findall(r"`(\.venv/bin/papermill [^`]+)`", readme)
    args = shlex.split(command)
    assert args[args.index("-p") + 1 :] == ["runs", "results/quick/*"], command
    # not executed by the parametrized test when this one runs it: see EXECUTED_ELSEWHERE
    assert args[1] == f"notebooks/{EXECUTED_ELSEWHERE}.ipynb", command
    out = tmp_path / "out.ipynb"
    args = [
        str(ROOT / args[0]),
        *[
            {"out.ipynb": str(out), "results/quick/*": "results/sample/*"}.get(a, a)
            for a in args[1:]
        ],
    ]
    result = subprocess.run(
        args,
        cwd=ROOT,
        env={**os.environ, "MPLBACKEND": "Agg"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    _drew(out)


def test_nbconvert_started_in_notebooks_reads_the_default_runs(tmp_path: Path) -> None:
    """nbconvert starts the kernel in the notebook's folder; the default still resolves."""
    result = subprocess.run(
        [
            str(ROOT / ".venv/bin/jupyter-nbconvert"),
            "--to",
            "notebook",
            "--execute",
            "--output-dir",
            str(tmp_path),
            f"{EXECUTED_ELSEWHERE}.ipynb",
        ],
        cwd=ROOT / "notebooks",
        env={**os.environ, "MPLBACKEND": "Agg"},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    _drew(tmp_path / f"{EXECUTED_ELSEWHERE}.ipynb")


def test_the_runs_parameter_is_a_list_or_a_comma_separated_string(monkeypatch) -> None:
    monkeypatch.chdir(ROOT / "notebooks")
    relative = str(SAMPLE.relative_to(ROOT))
    expected = [SAMPLE]
    assert [r.path for r in notebook_runs(relative).runs] == expected
    assert [r.path for r in notebook_runs([relative]).runs] == expected
    assert [r.path for r in notebook_runs(f"{relative}, results/sample/*").runs] == expected
    assert [r.path for r in notebook_runs([str(SAMPLE)]).runs] == expected  # absolute: as it is
