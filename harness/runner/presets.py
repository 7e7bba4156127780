"""Named sets of `cqrs-bench run` options; an option given on the command line wins.

`interference` (the default) is the experiment the project exists for: a dataset on which the baseline's
dashboards are expensive (sf 1), shoppers at a steady rate, analysts stepped 0, 4, 8, 16 within the
measured window, every architecture. `quick` is a light mixed load on a small dataset: it checks
that everything works, and is too light to tell the architectures apart.
"""

from __future__ import annotations

PRESETS: dict[str, dict[str, object]] = {
    "interference": {
        "mix": "dashboard-heavy",
        "shape": "interference",
        "sf": 1.0,
        "warmup": 10.0,
        "duration": 40.0,
        "experiment": "interference",
    },
    "quick": {
        "mix": "mixed",
        "shape": "steady",
        "sf": 0.2,
        "warmup": 8.0,
        "duration": 30.0,
        "experiment": "quick",
    },
}
DEFAULT = "interference"


def preset(name: str) -> dict[str, object]:
    """The options of preset `name`; ValueError naming the choices."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose from {', '.join(PRESETS)}")
    return dict(PRESETS[name])
