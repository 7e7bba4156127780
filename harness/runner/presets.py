"""Named sets of `cqrs-bench run` options; an option given on the command line wins.

`interference` (the default) is the experiment the project exists for: a dataset on which the baseline's
dashboards are expensive (sf 1), shoppers at a steady rate, analysts stepped 0, 4, 8, 16 within the
measured window, the architectures measured by default (`default_run` in their
architecture.toml: the main job has a time budget). `every-architecture` is the same experiment on
every architecture there is. `quick` is a light mixed load on a small dataset: it checks that
everything works, and is too light to tell the architectures apart.

A preset's `impls` ("default" or "all") says which architectures it measures when --impl is not
given.
"""

from __future__ import annotations

from implementations import registry

INTERFERENCE: dict[str, object] = {
    "impls": "default",
    "mix": "dashboard-heavy",
    "shape": "interference",
    "sf": 1.0,
    "warmup": 10.0,
    "duration": 40.0,
    "experiment": "interference",
}
PRESETS: dict[str, dict[str, object]] = {
    "interference": INTERFERENCE,
    "every-architecture": {**INTERFERENCE, "impls": "all", "experiment": "every-architecture"},
    "quick": {
        "impls": "default",
        "mix": "mixed",
        "shape": "steady",
        "sf": 0.2,
        "warmup": 8.0,
        "duration": 30.0,
        "experiment": "quick",
    },
}
DEFAULT = "interference"


def impls(chosen: dict[str, object]) -> list[str]:
    """The architectures a preset's options measure when --impl is not given."""
    return registry.names() if chosen["impls"] == "all" else registry.default_run()


def preset(name: str) -> dict[str, object]:
    """The options of preset `name`; ValueError naming the choices."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    return dict(PRESETS[name])
