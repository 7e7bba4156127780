"""An architecture is its folder: a copy of one under a new name, nothing else changed, is found by
the registry, passes the contract, and is run, verified, validated and reported like the others."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import implementations
from harness.postgres.servers import Servers
from harness.results.validate import validate_run
from harness.runner.run import RunPlan, run
from implementations import contract, registry

COPY = "copied_arch"  # the new folder's name: the architecture is `copied-arch`


@pytest.fixture
def copied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A copy of the folder of an architecture with a projection and a read server of its own
    (the one that exercises the most of the harness), in a directory outside the tree that
    CQRS_BENCH_ARCHITECTURES points at; its name."""
    source = next(
        a for a in registry.architectures().values() if a.projection and a.separate_read_server
    )
    root = tmp_path / "architectures"
    shutil.copytree(source.folder, root / COPY, ignore=shutil.ignore_patterns("__pycache__"))
    monkeypatch.setenv(registry.PATH_ENV, str(root))
    registry.architectures.cache_clear()
    try:
        yield COPY.replace("_", "-")
    finally:
        registry.architectures.cache_clear()
        implementations.__path__.remove(str(root))


def test_a_copied_folder_is_an_architecture_of_its_own(copied: str):
    found = registry.architecture(copied)
    assert found.folder.name == COPY and found.package == f"implementations.{COPY}"
    assert found.projection and found.separate_read_server and not found.baseline
    assert copied in registry.names() and copied in registry.projected()


def test_a_copied_architecture_passes_the_contract(copied: str, start_on_contract):
    impl = start_on_contract(copied)
    assert impl.name == copied
    contract.run_scenario(impl)


def test_a_copied_architecture_runs_to_a_valid_run_and_a_report_that_lists_it(
    copied: str, servers: Servers, tmp_path: Path
):
    plan = RunPlan(
        impls=[copied],
        transport="http",  # the service and the projector are child processes: they find it too
        duration=3,  # as test_run's every-architecture runs: the structure, not statistics
        warmup=1,
        sf=0.01,
        experiment="copied",
        results_root=tmp_path / "results",
        report=True,
    )
    (run_dir,) = run(plan, servers, progress=lambda _line: None)

    assert validate_run(run_dir) == []
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["status"] == "complete" and list(meta["impls"]) == [copied]
    assert meta["impls"][copied]["reconciliation"]["mismatches"] == 0
    report = (run_dir / "report" / "report.md").read_text()
    assert f"**{copied}**: {registry.architecture(copied).description}" in report


@pytest.mark.parametrize(
    "declared",
    ['[settings.knob]\ndefault = -1\nhelp = "x"', "[settings.knob]\ndefault = 1", "settings = 3"],
    ids=["negative", "no-help", "not-a-table"],
)
def test_a_malformed_setting_in_architecture_toml_is_refused_naming_it(copied: str, declared):
    toml = registry.architecture(copied).folder / registry.METADATA
    toml.write_text(toml.read_text() + "\n" + declared + "\n")
    registry.architectures.cache_clear()
    with pytest.raises(registry.ArchitectureError, match=r"architecture\.toml: settings"):
        registry.architectures()


def test_a_declared_setting_reaches_the_implementation_with_its_default(copied: str):
    toml = registry.architecture(copied).folder / registry.METADATA
    toml.write_text(toml.read_text() + '\n[settings.knob]\ndefault = 3\nhelp = "a knob"\n')
    registry.architectures.cache_clear()
    assert registry.settings_of(copied, {}) == {"knob": 3}
    assert registry.parse_settings([f"{copied}.knob=7"], [copied]) == {copied: {"knob": 7}}
    assert f"{copied}.knob (default 3): a knob" in registry.settings_help()
