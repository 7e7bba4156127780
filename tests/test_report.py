"""The report on the committed sample run, and `compare` with its regression gate."""

from __future__ import annotations

import collections
import html
import re
import shutil
from pathlib import Path

import pandas as pd
import pytest
import typer
from hdrh.histogram import HdrHistogram
from typer.testing import CliRunner

from harness.analysis import answer
from harness.analysis.evidence import evidence
from harness.analysis.load import Loaded, Run
from harness.analysis.report import SECTIONS, write_report
from harness.cli.analysis import compare, report
from harness.results import read_run_json
from harness.runner.latency import figures, new_histogram
from harness.runner.summary import summary_table

SAMPLE = sorted((Path(__file__).resolve().parents[1] / "results" / "sample" / "sample").iterdir())[
    -1
]


def _app() -> typer.Typer:
    app = typer.Typer()
    app.command("report")(report)
    app.command("compare")(compare)
    return app


def test_report_writes_markdown_with_its_charts(tmp_path: Path) -> None:
    result = CliRunner().invoke(_app(), ["report", str(SAMPLE), "--out", str(tmp_path)])
    assert result.exit_code == 0, result.output
    text = (tmp_path / "report.md").read_text()
    images = re.findall(r"!\[[^\]]*\]\(([^)]+\.png)\)", text)
    assert len(images) >= 10
    for name in images:
        assert (tmp_path / name).stat().st_size > 1000
    assert "## Decision record" in text and "### Where each architecture leads" in text
    for impl in ("crud", "cqrs-logical", "cqrs-physical"):
        assert f"**{impl}**" in text
    for image in re.finditer(r"^!\[[^\]]*\]\([^)]+\)\n\n(.*)$", text, flags=re.MULTILINE):
        assert re.fullmatch(r"\*[^*]+\*", image.group(1)), f"no caption: {image.group(0)}"
    _check_html(tmp_path, text, images)


def test_a_runs_end_reads_each_table_once(tmp_path: Path, monkeypatch) -> None:
    """The summary and the report of a run share one loaded run: no table is read from disk
    twice, and the evidence table and the answer are computed once."""
    from tests.test_answer import _copy  # here: test_answer imports this module

    run_dir = _copy(tmp_path, "once")  # the sample with a users table
    reads: collections.Counter[str] = collections.Counter()
    read_parquet = pd.read_parquet

    def counted(path, *args, **kwargs):
        reads[Path(path).stem] += 1
        return read_parquet(path, *args, **kwargs)

    monkeypatch.setattr(pd, "read_parquet", counted)
    data = Loaded([Run(run_dir, read_run_json(run_dir))])
    table, found = evidence(data), answer.answer(data)
    assert summary_table(data).startswith("ANSWER")
    write_report(data, tmp_path / "report")
    assert {"latency", "users", "waits", "resources", "lag", "freshness"} <= set(reads)
    assert set(reads.values()) == {1}, reads
    assert evidence(data) is table and answer.answer(data) is found


def _check_html(out: Path, markdown_text: str, images: list[str]) -> None:
    """report.html: self-contained (no external resource), every chart embedded, every section
    of the Markdown present."""
    page = (out / "report.html").read_text()
    assert not re.search(
        r"""(src|href)\s*=\s*["']?(https?:)?//|@import|url\(\s*["']?https?:""", page
    )
    embedded = re.findall(r'<img [^>]*src="data:image/png;base64,[A-Za-z0-9+/=]{1000,}"', page)
    assert len(embedded) == len(images) and not re.search(r'src="[^"]+\.png"', page)
    headings = re.findall(r"^#{1,6} (.+)$", markdown_text, flags=re.MULTILINE)
    assert len(headings) >= len(SECTIONS) + 2
    for heading in headings:
        plain = re.sub(r"[*_`]", "", heading).strip()
        assert re.search(
            rf"<h[1-6][^>]*>{re.escape(html.escape(plain, quote=False))}</h[1-6]>",
            re.sub(r"</?(code|em|strong)>", "", page),
        ), heading


def test_compare_a_run_with_itself_finds_no_change() -> None:
    result = CliRunner().invoke(
        _app(), ["compare", str(SAMPLE), str(SAMPLE), "--fail-on-regression"]
    )
    assert result.exit_code == 0, result.output
    assert "REGRESSION" not in result.output and "slower" not in result.output
    assert "no regression beyond noise and threshold" in result.output


def _slowed(blob: str, factor: float) -> str:
    """Test fixture: the same histogram with every recorded latency times `factor`."""
    if not blob:
        return blob
    source, slower = HdrHistogram.decode(blob), new_histogram()
    for item in source.get_recorded_iterator():
        slower.record_value(int(item.value_iterated_to * factor), item.count_at_value_iterated_to)
    return slower.encode().decode()


@pytest.fixture(scope="module")
def slower_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the sample run whose checkout and dashboard calls took 3 times as long and
    whose dashboards saw 3 times older data: a deliberately slower run. Made once for the module
    (seconds of histogram re-encoding); `compare` only reads it."""
    copy = tmp_path_factory.mktemp("slower") / "sample" / "slower"
    shutil.copytree(SAMPLE, copy)
    path = copy / "latency.parquet"
    latency = pd.read_parquet(path)
    slow = latency["operation"].str.match(r"checkout|dashboard_")
    latency.loc[slow, "hdr"] = latency.loc[slow, "hdr"].map(lambda b: _slowed(b, 3))
    for i in latency.index[slow & (latency["count"] > 0)]:
        hist = HdrHistogram.decode(latency.at[i, "hdr"])
        for key, value in figures(hist, int(latency.at[i, "count"])).items():
            latency.at[i, key] = value
    path.unlink()
    latency.to_parquet(path)
    fresh_path = copy / "freshness.parquet"
    freshness = pd.read_parquet(fresh_path)
    freshness["freshness_ms"] *= 3
    fresh_path.unlink()
    freshness.to_parquet(fresh_path)
    return copy


def test_gate_fails_on_a_slower_run(slower_copy: Path) -> None:
    result = CliRunner().invoke(
        _app(), ["compare", str(SAMPLE), str(slower_copy), "--fail-on-regression"]
    )
    assert result.exit_code == 2, result.output
    # Which figures get past the noise depends on the sample (a 20 s run's p99 rests on a few
    # requests); at least one gated figure must, and nothing may look faster.
    assert re.search(
        r"(dashboard p99|freshness p95|checkout p99) ms .* slower REGRESSION", result.output
    )
    assert "faster" not in result.output


def test_without_the_flag_a_regression_is_reported_but_exits_0(slower_copy: Path) -> None:
    result = CliRunner().invoke(_app(), ["compare", str(SAMPLE), str(slower_copy)])
    assert result.exit_code == 0 and "REGRESSION" in result.output
