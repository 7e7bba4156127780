"""Every notebook executes headless against the committed sample run and produces its charts."""

from __future__ import annotations

from pathlib import Path

import nbformat
import papermill
import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLE = sorted((ROOT / "results" / "sample" / "sample").iterdir())[-1]  # the committed run
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.ipynb"))


def test_the_four_notebooks_exist() -> None:
    assert {p.stem for p in NOTEBOOKS} >= {"latency", "lock_contention", "projection_lag",
                                            "decision"}  # fmt: skip


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_headless_and_draws(notebook: Path, tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MPLBACKEND", "Agg")
    source = nbformat.read(notebook, as_version=4)
    assert any("parameters" in c.metadata.get("tags", []) for c in source.cells)
    assert all(not c.get("outputs") for c in source.cells if c.cell_type == "code")
    out = tmp_path / notebook.name
    papermill.execute_notebook(str(notebook), str(out), parameters={"runs": [str(SAMPLE)]},
                               cwd=str(notebook.parent), kernel_name="python3",
                               progress_bar=False)  # fmt: skip
    executed = nbformat.read(out, as_version=4)
    outputs = [o for c in executed.cells if c.cell_type == "code" for o in c.outputs]
    assert not [o for o in outputs if o.output_type == "error"]
    assert sum("image/png" in o.get("data", {}) for o in outputs) >= 1
