"""Bottlenecks named: which component ran at its CPU limit at each load level, and a service
starved on purpose (`run --service-cpu-quota`). The normal run's side is checked in
test_run.py's HTTP run (no level of it measured the service)."""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
from pathlib import Path

import pandas as pd
import pytest

from harness.analysis import bottlenecks
from harness.analysis.load import Loaded, Run, load_runs
from harness.collectors.resources import ResourceSampler
from harness.deploy import cpu_quota
from harness.deploy.components import Component
from harness.postgres.servers import Servers
from harness.results.run_dir import update_run_json
from harness.results.validate import validate_run
from harness.runner.run import RunPlan, run
from tests.test_results import make_run

START = pd.Timestamp("2026-01-01T12:00:00Z")
CAPACITY = {
    "service": {"cores": 0.2, "basis": "cgroup /x quota"},
    "locust": {"cores": 1.0, "basis": "one Python process (GIL)"},
    "write_server": {"cores": 2.0, "basis": "affinity CPUs 0-1"},
    "runner": {"cores": 1.0, "basis": "one Python process (GIL)"},
    "machine": {"cores": 2.0, "basis": "2 logical CPUs"},
}


def _loaded(per_second: dict[str, list[float]], analysts: list[int]) -> Loaded:
    """A run of crud whose components used `per_second` cores in each measured second, with
    `analysts` running in each: its resources as the sampler writes them (cumulative, one
    sample a second, the first at the measure phase's start)."""
    seconds = len(analysts)
    rows = []
    for component, cores in per_second.items():
        total = 0.0
        for i in range(seconds + 1):
            rows.append(
                {
                    "impl": "crud",
                    "ts": START + pd.Timedelta(seconds=i, milliseconds=200),
                    "component": component,
                    "processes": 1,
                    "cpu_user_s": total,
                    "cpu_system_s": 0.0,
                    "rss_bytes": 1,
                }
            )
            total += cores[i] if i < seconds else 0.0
    users = pd.DataFrame(
        [
            {
                "impl": "crud",
                "second": START + pd.Timedelta(seconds=i),
                "user_class": cls,
                "users": n,
                "phase": "measure",
            }
            for i, level in enumerate(analysts)
            for cls, n in (("Shopper", 6), ("Analyst", level))
        ]
    )
    meta = {"experiment": "unit", "impls": {"crud": {"cpu_capacity": CAPACITY}}}
    found = Run(Path("/nonexistent/unit/run1"), meta)
    for name, frame in (("resources", pd.DataFrame(rows)), ("users", users)):
        frame.insert(0, "run", found.label)
        found._tables[name] = frame
    data = Loaded([found])
    data.__dict__["windows"] = pd.DataFrame(
        [
            {
                "run": found.label,
                "impl": "crud",
                "measure_start": START,
                "measure_end": START + pd.Timedelta(seconds=seconds + 1),
                "seconds": seconds,
            }
        ]
    )
    return data


def test_a_component_at_its_limit_most_seconds_of_a_level_is_named_and_a_busy_second_is_not():
    levels = [0] * 10 + [8] * 10
    data = _loaded(
        {
            # one second at the quota with no analysts: a spike, not a limit
            "service": [0.05] * 4 + [0.2] + [0.05] * 5 + [0.19] * 6 + [0.08] + [0.2] * 3,
            "locust": [0.3] * 20,
            "write_server": [0.5] * 10 + [1.0] * 10,
            "runner": [0.1] * 20,  # the harness's own process
            "machine": [1.0] * 10 + [1.97] * 10,
        },
        levels,
    )
    table = bottlenecks.table(data).set_index(["analysts", "component"])
    assert table.loc[(8, "runner"), "state"] == ""
    assert table.loc[(0, "service"), "state"] == ""
    assert table.loc[(0, "service"), "at_limit"] == 1
    # 9 of 10 seconds at the limit (one quiet second does not hide it)
    assert table.loc[(8, "service"), "state"] == "at limit"
    assert table.loc[(8, "service"), "at_limit"] == 9
    assert table.loc[(8, "machine"), "state"] == "at limit"
    assert table.loc[(8, "write_server"), "state"] == ""
    assert table.loc[(8, "service"), "share"] == pytest.approx(0.91)  # 0.182 of 0.2 cores
    assert table.loc[(8, "service"), "cores_lo"] < table.loc[(8, "service"), "cores"]

    flags = bottlenecks.flags(data)
    assert flags == [
        "The machine's 2 CPUs were all busy (1.97 cores on average) while measuring crud (8 "
        "analysts); this run's processes used 1.58 of them, the rest was other work on the "
        "machine: every component competed for a core, so latencies there include waiting for "
        "one; no single component is to blame.",
        "crud at 8 analysts: the service ran at its CPU limit (0.18 of 0.2 cores on average, at "
        "90% of it or more in 9 of 10 s; cgroup /x quota): this level measured the service, not "
        "the architecture.",
    ]


def test_the_load_generator_at_its_limit_is_flagged_and_a_server_only_named():
    data = _loaded(
        {"locust": [0.99] * 8, "write_server": [1.95] * 8, "machine": [1.5] * 8}, [4] * 8
    )
    named = bottlenecks.findings(data)
    assert [(f.component, f.role) for f in named] == [
        ("locust", "load generator"),
        ("write_server", "server"),
    ]
    (flag,) = bottlenecks.flags(data)
    assert flag.startswith("crud at 4 analysts: Locust, the load generator, ran at its CPU limit")
    assert flag.endswith("this level measured the load generator, not the architecture.")
    assert "write_server ran at its CPU limit" in bottlenecks.sentences(named)[1]


def test_a_run_without_capacity_names_nothing():
    data = _loaded({"service": [1.0] * 5}, [0] * 5)
    data.runs[0].meta["impls"]["crud"] = {}
    assert bottlenecks.table(data).empty and bottlenecks.flags(data) == []


def test_the_machine_is_sampled_as_a_component():
    sampler = ResourceSampler({})
    sampler.add_machine()
    sampler._sample()
    sum(range(2_000_000))  # some CPU between the samples
    sampler._sample()
    rows = sampler.frame()
    assert list(rows["component"]) == ["machine", "machine"]
    assert rows["cpu_user_s"].iloc[0] == 0.0
    assert (rows["cpu_user_s"] + rows["cpu_system_s"]).iloc[1] > 0
    assert (rows["processes"] > 1).all()


def test_a_quota_that_cannot_be_made_says_why_in_one_line(tmp_path: Path, monkeypatch):
    where = cpu_quota.Hierarchy(1, tmp_path / "not-mounted", "")
    monkeypatch.setattr(cpu_quota, "hierarchy", lambda: where)
    with pytest.raises(cpu_quota.QuotaUnavailable) as caught:
        cpu_quota.check(0.1)
    assert "\n" not in str(caught.value)
    assert str(caught.value).startswith(f"cannot make a CPU-quota cgroup at {where.mount}/")
    with pytest.raises(ValueError, match="needs --transport http"):
        RunPlan(impls=["crud"], transport="inproc", service_cpu_quota=0.1).check()


def test_cgroup_v2_is_written_as_cpu_max(tmp_path: Path, monkeypatch):
    """cgroup v2: the parent lets its children use cpu, the quota is `cpu.max`; lifted to max
    when the component stops (a fake cgroup file system: plain files)."""
    (tmp_path / "cgroup.subtree_control").write_text("")
    monkeypatch.setattr(cpu_quota, "hierarchy", lambda: cpu_quota.Hierarchy(2, tmp_path, ""))
    quota = cpu_quota.CpuQuota(0.25, "service")
    path = quota.create()
    assert (tmp_path / "cgroup.subtree_control").read_text() == "+cpu"
    assert (path / "cpu.max").read_text() == "max 100000"
    quota.apply()
    assert (path / "cpu.max").read_text() == "25000 100000"
    (path / "cpu.stat").write_text(
        "usage_usec 9\nnr_periods 10\nnr_throttled 4\nthrottled_usec 5\n"
    )
    quota.lift()
    assert (path / "cpu.max").read_text() == "max 100000"
    assert quota.record()["throttled_share"] == 0.4


def test_a_bad_capacity_in_run_json_is_caught(tmp_path: Path):
    run_dir = make_run(tmp_path, impls=["crud"])
    update_run_json(run_dir, impls={"crud": {"cpu_capacity": {"service": {"cores": 0}}}})
    assert validate_run(run_dir) == [
        "run.json: impls.crud.cpu_capacity.service must be {cores: a number > 0, basis: text}, "
        "not {'cores': 0}"
    ]


def _leftover_cgroups() -> list[str]:
    try:
        where = cpu_quota.hierarchy().parent
        return sorted(p.name for p in where.glob(f"{cpu_quota.PREFIX}{os.getpid()}-*"))
    except (OSError, cpu_quota.QuotaUnavailable):
        return []


def test_a_starved_service_is_named_as_what_the_level_measured(servers: Servers, tmp_path: Path):
    """The service limited to a tenth of a core (a cgroup the run makes and removes): it is at
    its limit, throttled, and the answer says the level measured the service."""
    try:
        cpu_quota.check(0.1)
    except cpu_quota.QuotaUnavailable as exc:
        pytest.skip(str(exc))
    plan = RunPlan(
        impls=["crud"],
        transport="http",
        mix="checkout-only",
        shape="steady",
        duration=8,
        warmup=2,
        sf=0.01,
        service_cpu_quota=0.1,
        experiment="starved",
        results_root=tmp_path,
        report=False,
    )
    (run_dir,) = run(plan, servers, progress=lambda _line: None)
    assert validate_run(run_dir) == []
    meta = json.loads((run_dir / "run.json").read_text())
    assert meta["config"]["service_cpu_quota"] == 0.1
    details = meta["impls"]["crud"]
    assert details["cpu_capacity"]["service"]["cores"] == 0.1
    assert "quota" in details["cpu_capacity"]["service"]["basis"]
    assert details["cpu_capacity"]["machine"]["cores"] == os.cpu_count()
    throttled = details["cpu_quota"]["service"]
    assert throttled["applied"] and throttled["nr_throttled"] > 0, throttled
    assert _leftover_cgroups() == []

    data = Loaded(load_runs(run_dir))
    service = bottlenecks.table(data).query("component == 'service'")
    assert list(service["state"]) == ["at limit"], service.to_dict("records")
    summary = (run_dir / "summary.txt").read_text()
    assert "this level measured the service, not the architecture" in summary.replace("\n", " ")
    _readme_example(run_dir)


def _readme_example(run_dir: Path) -> None:
    """results/README.md's example of CPU against capacity, run on this run: the service's
    median second used (about) all of its quota."""
    readme = (Path(__file__).resolve().parents[1] / "results" / "README.md").read_text()
    section = readme.split("## CPU against capacity", 1)[1].split("## Tables", 1)[0]
    (code,) = re.findall(r"```python\n(.*?)```", section, flags=re.S)
    placeholder = 'Path("results/starved/20250131T120000Z")'
    assert code.count(placeholder) == 1, "the example's run path changed: update this test"
    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        exec(compile(code.replace(placeholder, f"Path({str(run_dir)!r})"), "README", "exec"), {})
    shares = dict(line.split() for line in printed.getvalue().splitlines())
    assert set(shares) >= {"service", "locust", "write_server", "machine"}, shares
    assert int(shares["service"].rstrip("%")) >= 90, shares


def test_a_component_with_a_quota_leaves_no_cgroup_when_it_fails(tmp_path: Path):
    try:
        cpu_quota.check(0.5)
    except cpu_quota.QuotaUnavailable as exc:
        pytest.skip(str(exc))
    component = Component("failing", ["/bin/false"], tmp_path / "failing.log").limit_cpu(0.5)
    component.start()
    assert component.wait(10) == 1
    assert len(_leftover_cgroups()) == 1
    component.stop()
    assert _leftover_cgroups() == []
