"""How much CPU each component of a run could use at most: its capacity, recorded in run.json
(`impls.<impl>.cpu_capacity`) when the load starts, so the analysis can say which component ran
at its limit (harness/analysis/bottlenecks.py).

A component's capacity is the smallest of: its processes that can run Python at once (one core
per process, because of the GIL: the service's worker processes, a Locust process, the projector,
the refresher), the CPUs its affinity allows (`db up --write-cpus`, `serve --cpus`), the quota of
its cgroup and of every cgroup above it (`run --service-cpu-quota`, a container's limit), and the
machine's. A PostgreSQL server runs a process per session: its processes do not bound it.
"""

from __future__ import annotations

import os

import psutil

from harness.deploy.cpu_quota import cores_allowed


def _cpus(cpus: list[int]) -> str:
    """'CPUs 0-1' or 'CPUs 0, 2' or 'CPU 1'."""
    if len(cpus) == 1:
        return f"CPU {cpus[0]}"
    if cpus == list(range(cpus[0], cpus[-1] + 1)):
        return f"CPUs {cpus[0]}-{cpus[-1]}"
    return "CPUs " + ", ".join(map(str, cpus))


def machine() -> dict:
    """The machine's capacity: its logical CPUs, or the quota that bounds this process's cgroup
    (a container's limit) when smaller."""
    cpus = os.cpu_count() or 1
    quota, cgroup = cores_allowed()
    if quota is not None and quota < cpus:
        return {"cores": round(quota, 3), "basis": f"cgroup {cgroup} quota ({cpus} logical CPUs)"}
    return {"cores": float(cpus), "basis": f"{cpus} logical CPUs"}


def component(pid: int, processes: int | None, what: str = "") -> dict | None:
    """The capacity of the component whose root process is `pid`: {cores, basis} (the basis
    names each bound that applied); None when the process is gone. `processes`: how many of its
    processes run Python (None: not bounded by its processes, a PostgreSQL server)."""
    try:
        cpus = sorted(psutil.Process(pid).cpu_affinity())
    except (psutil.Error, AttributeError):  # gone, or no affinity on this platform
        return None
    bounds: list[tuple[float, str]] = [(float(len(cpus)), f"affinity {_cpus(cpus)}")]
    if processes is not None:
        bounds.append((float(processes), what or f"{processes} Python processes (GIL)"))
    quota, cgroup = cores_allowed(pid)
    if quota is not None:
        bounds.append((quota, f"cgroup {cgroup} quota"))
    cores = min(b[0] for b in bounds)
    basis = "; ".join(text for value, text in bounds if value == cores)
    return {"cores": round(cores, 3), "basis": basis}


def capacities(components: dict[str, tuple[int, int | None, str]]) -> dict[str, dict]:
    """run.json's `cpu_capacity`: component name -> {cores, basis}, for `components` (name ->
    (root pid, Python processes or None, how those are described)) and the `machine`; a
    component is never given more than the machine."""
    whole = machine()
    out = {}
    for name, (pid, processes, what) in components.items():
        found = component(pid, processes, what)
        if found is None:
            continue
        if found["cores"] > whole["cores"]:
            found = {"cores": whole["cores"], "basis": f"the machine: {whole['basis']}"}
        out[name] = found
    out["machine"] = whole
    return out
